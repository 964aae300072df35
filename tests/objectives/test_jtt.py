"""Just Train Twice: the error set of the first model, up-sampling, ERM loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from duetfair.errors import DuetfairError
from duetfair.objectives import build_objective
from duetfair.objectives.jtt import JustTrainTwice, error_set
from first_stage_cases import context_of, planted_first_stage


@settings(max_examples=40, deadline=None)
@given(
    dice=st.lists(st.floats(0, 1), min_size=1, max_size=60),
    n_groups=st.integers(1, 4),
    fraction=st.floats(0.05, 0.95),
)
def test_group_fraction_takes_the_worst_share_of_every_group(dice, n_groups, fraction):
    d = np.asarray(dice)
    g = np.arange(d.size) % n_groups - (1 if n_groups > 1 else 0)  # includes unknown (-1) cases
    chosen = error_set(d, g, fraction=fraction)
    for group in np.unique(g):
        idx = np.flatnonzero(g == group)
        k = int(round(fraction * idx.size))
        assert chosen[idx].sum() == k
        if 0 < k < idx.size:  # every chosen case scores no better than every case left out
            assert d[idx][chosen[idx]].max() <= d[idx][~chosen[idx]].min()


def test_threshold_and_undefined_dice():
    d = np.array([0.2, 0.8, np.nan, 0.49])
    assert error_set(d, np.zeros(4, dtype=int), error="threshold", threshold=0.5).tolist() == [True, False, False, True]
    assert not error_set(np.array([np.nan, np.nan]), np.zeros(2, dtype=int), fraction=0.5).any()


def test_up_samples_the_planted_hard_cases_and_trains_with_the_mean_loss():
    first, hard = planted_first_stage(hard_share=0.25)
    obj = build_objective("jtt", context=context_of(first, 2), upweight=6.0, fraction=0.25)
    w = obj.sampling_weights(first.case_ids).numpy()
    assert (w[hard] == 6.0).all() and (w[~hard] == 1.0).all()  # the error set is exactly the subtype here
    sub = obj.case_subgroups()
    assert (sub["subgroup"] == "error").to_numpy().tolist() == hard.tolist()
    losses = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    assert torch.isclose(obj(losses, torch.tensor([0, 1, -1])), torch.tensor(2.0))


def test_refuses_without_first_stage_and_for_foreign_cases():
    with pytest.raises(DuetfairError, match="needs a first stage"):
        JustTrainTwice.from_context(context_of(planted_first_stage()[0], 2).__class__(num_groups=2))
    first, _ = planted_first_stage()
    obj = build_objective("jtt", context=context_of(first, 2))
    with pytest.raises(DuetfairError, match="differ from the first stage"):
        obj.sampling_weights(["not-a-case"])
    with pytest.raises(DuetfairError, match="upweight must be >= 1"):
        build_objective("jtt", num_groups=2, upweight=0.5)
