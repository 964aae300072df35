"""Every registered metric passes the same checks (direction, bounds, empty fill, perfect value).

A new metric is one record in ``duetfair.metrics.registry`` (and its computation in
``metrics.per_case``); these tests pick it up by iterating over the registry.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from duetfair.errors import DuetfairError
from duetfair.metrics import registry
from duetfair.metrics.cases import case_level
from duetfair.metrics.per_case import HD_MAX_MAMAMIA, per_case_metrics
from duetfair.metrics.registry import EMPTY_CELLS, REGISTRY, MetricInfo
from duetfair.options import EmptyPolicy, choices

SCORED = [m for m in REGISTRY.values() if m.scored_by is not None]
ALL = list(REGISTRY.values())


def _blob(size: int, lo: int, hi: int) -> np.ndarray:
    mask = np.zeros((size, size), dtype=np.int64)
    mask[lo:hi, lo:hi] = 1
    return mask


def _score(info: MetricInfo, pred: np.ndarray, ref: np.ndarray, empty: str = "nnunet") -> float:
    """The metric's value on one [H, W] pair (class 1), computed by the request that yields it."""
    table = per_case_metrics(pred[None], ref[None], num_classes=2, metrics=(info.scored_by,), empty=empty)
    return float(table[info.name].iloc[0])


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@pytest.mark.parametrize("info", ALL, ids=lambda m: m.name)
def test_record_is_consistent(info: MetricInfo) -> None:
    low, high = info.bounds
    assert info.name == info.name.lower() and info.label
    assert low <= info.perfect <= high
    assert info.perfect == (high if info.higher_is_better else low), "perfect is the best end of the bounds"
    assert (info.name in registry.LOWER_IS_BETTER) is (not info.higher_is_better)
    assert (info.name in registry.BOUNDED_METRICS) is info.bounded
    if info.failure_cutoff is not None:
        assert low < info.failure_cutoff < high
        assert registry.DEFAULT_FAILURE_THRESHOLDS[info.name] == info.failure_cutoff
    assert not info.is_distance or not info.higher_is_better
    assert set(info.empty) <= set(choices(EmptyPolicy))


@pytest.mark.parametrize("policy", choices(EmptyPolicy))
@pytest.mark.parametrize("info", SCORED, ids=lambda m: m.name)
def test_perfect_prediction_scores_perfect(info: MetricInfo, policy: str) -> None:
    ref = _blob(16, 4, 11)
    assert _score(info, ref, ref, policy) == pytest.approx(info.perfect)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("info", SCORED, ids=lambda m: m.name)
def test_imperfect_prediction_is_worse_and_within_bounds(info: MetricInfo, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = _blob(20, 5, 13)
    pred = ref.copy()
    pred[rng.integers(0, 20, 12), rng.integers(0, 20, 12)] ^= 1  # scattered errors, some far from the blob
    value = _score(info, pred, ref)
    low, high = info.bounds
    assert low <= value <= high
    assert (value < info.perfect) if info.higher_is_better else (value > info.perfect)


@pytest.mark.parametrize("policy", choices(EmptyPolicy))
@pytest.mark.parametrize("info", SCORED, ids=lambda m: m.name)
def test_empty_masks_follow_the_registry(info: MetricInfo, policy: str) -> None:
    blob, nothing = _blob(16, 4, 11), np.zeros((16, 16), dtype=np.int64)
    pairs = {"both": (nothing, nothing), "ref": (blob, nothing), "pred": (nothing, blob)}  # (pred, ref)
    source = info if info.empty else REGISTRY[info.scored_by or ""]
    for i, cell in enumerate(EMPTY_CELLS):
        got = _score(info, *pairs[cell], empty=policy)
        want = source.empty[policy][i]
        if info.name == "normhd":  # NormHD follows HD95: 1 where it is infinite, else HD95 / 150
            want = 1.0 if math.isinf(want) else want / HD_MAX_MAMAMIA
        assert _same(got, want), f"{info.name}, {policy}, {cell}: {got} != {want}"
        assert math.isnan(got) or info.bounds[0] <= got <= info.bounds[1]


def test_derived_lists_come_from_the_registry() -> None:
    from duetfair.audit.inputs import TABLE_METRICS
    from duetfair.engine.config import validate
    from duetfair.metrics.cases import METRIC_COLUMNS
    from duetfair.metrics.folders import SCORE_METRICS
    from duetfair.metrics.per_case import METRICS

    assert METRICS == SCORE_METRICS == registry.SCORED_METRICS == tuple(validate({}).eval.metrics)
    assert TABLE_METRICS == tuple(m.name for m in SCORED)
    assert set(METRIC_COLUMNS) == {*TABLE_METRICS, "n_ref", "n_pred"}
    assert {"dice", "iou", "hd95", "nsd"} <= set(registry.SCORED_METRICS)


def test_unknown_metric_is_a_one_line_error_everywhere() -> None:
    from duetfair.engine.config import validate

    with pytest.raises(DuetfairError, match=r"metric 'hd9'.*dice"):
        registry.lookup("hd9")
    with pytest.raises(DuetfairError, match=r"unknown metric 'hd9'; expected a subset of dice, iou"):
        per_case_metrics(np.zeros((1, 4, 4)), np.zeros((1, 4, 4)), num_classes=2, metrics=("hd9",))
    with pytest.raises(DuetfairError, match=r"config eval\.metrics: 'hd9' is not one of 'dice'"):
        validate({"eval": {"metrics": ["dice", "hd9"]}})


def test_per_class_keys_have_their_metric_facts() -> None:
    from duetfair.metrics.hidden import default_failure_threshold, higher_is_better

    assert not higher_is_better("hd95[1]") and not higher_is_better("HD95[lesion]")
    assert higher_is_better("dice[rim]") and higher_is_better("unregistered_score")
    assert default_failure_threshold("dice[1]") == 0.5 and default_failure_threshold("hd95[1]") is None
    assert registry.is_bounded("nsd[2]") and not registry.is_bounded("normhd")
    assert registry.label("hd95[1]") == "HD95 1"
    assert registry.column_label("es_iou") == "ES-IoU"
    assert registry.column_label("worst_group_dice") == "Worst-group Dice"


def test_per_class_distance_audit_takes_the_highest_group_as_worst() -> None:
    from duetfair.audit import audit_table

    hd95 = [(1.0 if i % 2 == 0 else 9.0) + i / 100 for i in range(40)]  # group b: the larger distances
    df = pd.DataFrame({"case_id": [str(i) for i in range(40)], "g": ["a", "b"] * 20, "hd95[1]": hd95})
    block = audit_table(df, ["g"], metrics=("hd95[1]",), n_boot=0)["metrics"]["hd95[1]"]
    assert block["higher_is_better"] is False
    assert block["attributes"]["g"]["worst_group"] == "b"


def _cases(**extra: list[object]) -> pd.DataFrame:
    return pd.DataFrame(
        {"case_id": list("aabb"), "class": [1, 2, 1, 2], "dice": [0.9, 0.7, 0.8, 0.6], "sex": list("FFMM"), **extra}
    )


def test_registered_metric_column_is_never_an_attribute() -> None:
    out = case_level(_cases(assd=[1.0, 3.0, 2.0, 4.0]), metrics=("dice", "assd"))
    assert list(out["assd"]) == [2.0, 3.0] and list(out["dice"]) == pytest.approx([0.8, 0.7])
    out = case_level(_cases(assd=[1.0, 3.0, 2.0, 4.0]), metrics=("dice",))
    assert "assd" not in out.columns and list(out["sex"]) == ["F", "M"]


def test_unregistered_per_class_column_is_refused() -> None:
    with pytest.raises(DuetfairError, match=r"column 'my_score' differs between the classes of one case"):
        case_level(_cases(my_score=[1.0, 3.0, 2.0, 4.0]))
    out = case_level(_cases(site=["x", "x", "y", "y"]))  # the same on every row of a case: an attribute
    assert list(out["site"]) == ["x", "y"]
