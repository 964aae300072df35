"""Sample-level baselines: batch CVaR and focal-style weighting."""

import math

import pytest
import torch

from duetfair.errors import DuetfairError
from duetfair.objectives.sample_robust import FocalWeighting, SampleCVaR

LOSSES = torch.tensor([0.5, 3.0, 1.0, 2.0], dtype=torch.float64)
GROUP = torch.tensor([0, -1, 1, 1])


def test_cvar_hand_example_and_alpha_one():
    assert float(SampleCVaR(2, alpha=0.5)(LOSSES, GROUP)) == pytest.approx(2.5)
    assert float(SampleCVaR(2, alpha=0.3)(LOSSES, GROUP)) == pytest.approx(2.5)  # ceil(1.2) = 2
    assert float(SampleCVaR(2, alpha=0.25)(LOSSES, GROUP)) == pytest.approx(3.0)
    assert float(SampleCVaR(2, alpha=1.0)(LOSSES, GROUP)) == pytest.approx(float(LOSSES.mean()))


def test_focal_weights_and_gamma_zero():
    w = (1 - torch.exp(-LOSSES)) ** 2
    expected = float((w * LOSSES).sum() / w.sum())
    assert float(FocalWeighting(2, gamma=2.0)(LOSSES, GROUP)) == pytest.approx(expected)
    assert float(FocalWeighting(2, gamma=0.0)(LOSSES, GROUP)) == pytest.approx(float(LOSSES.mean()))
    zeros = torch.zeros(3, dtype=torch.float64)
    assert float(FocalWeighting(1)(zeros, torch.zeros(3, dtype=torch.long))) == 0.0


def test_cvar_gradient_selects_worst_cases():
    losses = LOSSES.clone().requires_grad_(True)
    SampleCVaR(2, alpha=0.5)(losses, GROUP).backward()
    torch.testing.assert_close(losses.grad, torch.tensor([0, 0.5, 0, 0.5], dtype=torch.float64))


def test_options_validated():
    with pytest.raises(DuetfairError, match="alpha"):
        SampleCVaR(1, alpha=0)
    with pytest.raises(DuetfairError, match="gamma"):
        FocalWeighting(1, gamma=-1)
    assert math.isfinite(float(FocalWeighting(1, gamma=1)(torch.tensor([50.0]), torch.zeros(1, dtype=torch.long))))
