"""Which significant slices are reported: group-adjusted scopes, broadest scope, refinements."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from duetfair.audit.slice_findings import slice_findings
from duetfair.audit.slices import OVERALL, SliceSettings, find_slices
from duetfair.data.groups import GroupSpec
from duetfair.errors import DuetfairError


def search(frame: pd.DataFrame, by: list[str], **settings: object) -> dict:
    spec = GroupSpec.for_table(frame, by)
    return find_slices(frame, "dice", {a: spec.labels(frame, a) for a in by}, settings=SliceSettings(**settings))


def where(found: dict, definition: str) -> set[str]:
    """The scopes a slice is listed in."""
    return {s["within"] for s in found["hidden_slices"] if s["definition"] == definition}


def cases(n: int, seed: int) -> tuple[pd.DataFrame, np.random.Generator]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "case_id": [f"c{i:04d}" for i in range(n)],
            "site": rng.choice(["A", "B", "C"], n),
            "sex": rng.choice(["F", "M"], n),
            "desc_size": rng.lognormal(5, 0.6, n),
            "desc_contrast": rng.normal(0, 1.5, n),
            "desc_noise": rng.uniform(0, 1, n),
        }
    )
    return frame, rng


def test_a_group_gap_does_not_pass_for_a_hidden_slice_inside_another_attributes_groups():
    """Race C scores lower and its images are noisier: inside ``sex=F`` the noisy cases score lower
    only because more of them are of race C. Compared with cases of the same race, nothing."""
    frame, rng = cases(900, 0)
    frame = frame.rename(columns={"site": "race"})
    c = (frame["race"] == "C").to_numpy()
    frame["desc_noise"] = np.where(c, rng.uniform(0.5, 1, len(frame)), rng.uniform(0, 0.7, len(frame)))
    frame["dice"] = np.clip(rng.normal(0.85, 0.05, len(frame)) - 0.2 * c, 0, 1)
    raw = search(frame, ["race", "sex"], within="raw", overall="adjusted")
    assert {"sex=F", "sex=M"} & where(raw, "noisy structures")  # the race gap seen inside the sex groups
    found = search(frame, ["race", "sex"])
    assert found["hidden_slices"] == [], [(s["within"], s["definition"]) for s in found["hidden_slices"]]
    assert found["slice_search"]["within_adjusted"]


def test_a_slice_failing_in_every_group_is_one_finding_at_the_whole_table():
    frame, rng = cases(900, 1)
    small = (frame["desc_size"] <= frame["desc_size"].quantile(1 / 3)).to_numpy()
    frame["dice"] = np.clip(rng.normal(0.85, 0.05, len(frame)) - 0.3 * small, 0, 1)
    apart = search(frame, ["site", "sex"], merge_scopes=False)
    assert where(apart, "small structures") == {OVERALL, "site=A", "site=B", "site=C", "sex=F", "sex=M"}
    merged = search(frame, ["site", "sex"])
    assert where(merged, "small structures") == {OVERALL}
    assert merged["slice_search"]["n_significant"] == apart["slice_search"]["n_significant"]  # tests unchanged
    top = merged["hidden_slices"][0]
    assert top["definition"] == "small structures" and top["gap_adjusted"] and top["adjusted_for"] == ["site", "sex"]


def test_a_slice_much_worse_inside_one_group_stays_listed_there():
    frame, rng = cases(900, 2)
    small = (frame["desc_size"] <= frame["desc_size"].quantile(1 / 3)).to_numpy()
    in_b = (frame["site"] == "B").to_numpy()
    frame["dice"] = np.clip(rng.normal(0.85, 0.05, len(frame)) - 0.1 * small - 0.4 * (small & in_b), 0, 1)
    found = search(frame, ["site", "sex"])
    assert {OVERALL, "site=B"} <= where(found, "small structures")
    assert not {"site=A", "site=C", "sex=F", "sex=M"} & where(found, "small structures")
    inside = next(s for s in found["hidden_slices"] if s["within"] == "site=B")
    assert inside["adjusted_for"] == ["sex"]
    text = next(f["text"] for f in slice_findings(found) if f["within"] == "site=B")
    assert text.startswith("Within site = B (compared with cases of the same sex groups): small structures")


@pytest.mark.parametrize("rest_fails", [False, True])
def test_a_broad_slice_gives_way_to_the_refinement_that_holds_its_failure(rest_fails):
    """Only small low-contrast cases fail: "small structures" is significant, but its failure lies
    in "small, low-contrast structures", which is listed in its place. When the other small cases
    fail too, the broad slice stays."""
    frame, rng = cases(900, 3)
    small = (frame["desc_size"] <= frame["desc_size"].quantile(1 / 3)).to_numpy()
    weak = (frame["desc_contrast"].abs() <= frame["desc_contrast"].abs().quantile(1 / 3)).to_numpy()
    loss = 0.3 * (small & weak) + 0.15 * rest_fails * small
    frame["dice"] = np.clip(rng.normal(0.85, 0.05, len(frame)) - loss, 0, 1)
    broad = search(frame, ["site"], refine=False)
    assert OVERALL in where(broad, "small structures")
    found = search(frame, ["site"])
    listed = [s["definition"] for s in found["hidden_slices"] if s["within"] == OVERALL]
    if rest_fails:
        assert "small structures" in listed and "small, low-contrast structures" in listed
    else:
        assert listed[0] == "small, low-contrast structures" and "small structures" not in listed
        assert listed.count("small, low-contrast structures") == 1


def test_bad_selection_settings_are_refused():
    with pytest.raises(DuetfairError, match="slice within 'none': expected adjusted or raw"):
        SliceSettings(within="none").check()
