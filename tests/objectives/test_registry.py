"""Registry: every objective builds by name, options and inputs are validated."""

import inspect

import pytest
import torch

from duetfair.errors import DuetfairError
from duetfair.objectives import Objective, available_objectives, build_objective
from duetfair.objectives.base import EXTRA_INPUTS
from duetfair.objectives.registry import objective_class, objective_options

EXTRA = {"adversarial": {"feature_dim": 4}}


def _build(name: str) -> Objective:
    """``name`` for 3 groups; a two-stage objective from a first stage over the cases c0..c5."""
    if not objective_class(name).needs_first_stage:
        return build_objective(name, num_groups=3, **EXTRA.get(name, {}))
    import numpy as np
    import pandas as pd

    from duetfair.objectives.base import ObjectiveContext
    from duetfair.objectives.stage import FirstStageCases

    cases = pd.DataFrame(
        {"case_id": [f"c{i}" for i in range(6)], "group": [0, 1, -1, 2, 0, 0], "dice": np.linspace(0, 1, 6)}
    )
    first = FirstStageCases(cases, np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32))
    return build_objective(name, context=ObjectiveContext(num_groups=3, group_counts=(3, 1, 1), first_stage=first))


@pytest.mark.parametrize("name", available_objectives())
def test_every_objective_builds_runs_and_backpropagates(name):
    obj = _build(name)
    assert isinstance(obj, Objective) and obj.requires <= EXTRA_INPUTS
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 2, 5, 5, generator=g, requires_grad=True)
    target = torch.randint(0, 2, (6, 1, 5, 5), generator=g)
    from duetfair.objectives.per_case import PerCaseDiceCE

    losses = PerCaseDiceCE()(logits, target)
    batch = {
        "logits": logits,
        "target": target,
        "features": torch.randn(6, 4, generator=g),
        "case_ids": [f"c{i}" for i in range(6)],
    }
    loss = obj(losses, torch.tensor([0, 1, -1, 2, 0, 0]), **{k: batch[k] for k in obj.requires})
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert logits.grad.abs().sum() > 0
    assert all(isinstance(v, float) for v in obj.log_values().values())


def test_expected_names_and_requirements():
    assert set(available_objectives()) >= {
        "erm",
        "group_dro",
        "febs",
        "adversarial",
        "fair_dro",
        "divergence",
        "cvar",
        "focal",
    }
    assert build_objective("febs", num_groups=2).requires == {"logits", "target"}
    assert build_objective("divergence", num_groups=2).requires == {"case_ids"}
    assert build_objective("fair_dro", num_groups=2).requires == frozenset()


def test_errors_are_one_line_and_name_the_problem():
    with pytest.raises(DuetfairError, match="unknown objective 'dro'") as err:
        build_objective("dro", num_groups=2)
    assert "\n" not in str(err.value)
    with pytest.raises(DuetfairError, match="unknown option"):
        build_objective("group_dro", num_groups=2, stepsize=0.1)
    with pytest.raises(DuetfairError, match="feature_dim"):
        build_objective("adversarial", num_groups=2)
    with pytest.raises(DuetfairError, match="num_groups"):
        build_objective("erm", num_groups=0)
    with pytest.raises(DuetfairError, match="needs 'case_ids'"):
        build_objective("divergence", num_groups=2)(torch.zeros(2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(DuetfairError, match="group must"):
        build_objective("erm", num_groups=2)(torch.zeros(2), torch.zeros(2, 1, dtype=torch.long))


def test_options_listing():
    opts = objective_options("fair_dro")
    assert opts["within"] == "kl" and opts["tau"] == 1.0 and opts["across"] == "size"
    assert objective_options("adversarial")["feature_dim"] is inspect.Parameter.empty
