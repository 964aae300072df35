"""FEBS: group scales (with the reference pitfalls fixed), pooled group Dice, loss composition."""

import math

import pytest
import torch

from duetfair.errors import DuetfairError
from duetfair.objectives.febs import FEBS, TANH1, febs_group_scales
from duetfair.objectives.per_case import PerCaseDiceCE


def test_scales_hand_example_and_absent_group_ignored():
    scales = febs_group_scales(torch.tensor([0.5, 1.0, 0.0]), torch.tensor([2.0, 3.0, 0.0]))
    # group 2 is absent: its zero loss must not become the minimum (reference pitfall)
    torch.testing.assert_close(scales, torch.tensor([math.tanh(1.0), math.tanh(0.5), TANH1]))
    gamma2 = febs_group_scales(torch.tensor([0.5, 1.0]), torch.tensor([1.0, 1.0]), gamma=2.0)
    assert float(gamma2[1]) == pytest.approx(math.tanh(0.25))


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(5, 3, 6, 6, generator=g, dtype=torch.float64)
    target = torch.randint(0, 3, (5, 1, 6, 6), generator=g)
    return logits, target


def test_loss_matches_manual_composition():
    logits, target = _batch()
    group = torch.tensor([0, 1, 0, -1, 1])
    obj = FEBS(3)
    loss = obj(PerCaseDiceCE()(logits, target), group, logits=logits, target=target)
    probs = torch.softmax(logits, 1)
    onehot = torch.nn.functional.one_hot(target[:, 0], 3).movedim(-1, 1).double()
    group_loss = []
    for g in (0, 1):
        p, y = probs[group == g], onehot[group == g]
        inter, pred, ref = (p * y).sum((0, 2, 3)), p.sum((0, 2, 3)), y.sum((0, 2, 3))
        group_loss.append(float((1 - (2 * inter + 1e-5) / (pred + ref + 1e-5)).sum()))
    best = min(group_loss)
    scale = torch.tensor([math.tanh(best / group_loss[0]), math.tanh(best / group_loss[1]), TANH1], dtype=torch.float64)
    case_scale = torch.where(group >= 0, scale[group.clamp_min(0)], torch.tensor(TANH1, dtype=torch.float64))
    dice, ce = PerCaseDiceCE().components(logits, target, prob_scale=case_scale)
    torch.testing.assert_close(loss, (0.5 * dice + 0.5 * ce).mean())
    torch.testing.assert_close(obj.group_dice_loss[:2], torch.tensor(group_loss, dtype=torch.float32))
    assert obj.log_values()["scale_2"] == pytest.approx(TANH1)


def test_worse_group_gets_more_gradient_pressure():
    logits, target = _batch(1)
    good = torch.nn.functional.one_hot(target[:, 0], 3).movedim(-1, 1).double() * 8.0
    logits = torch.cat([good[:2], logits[2:]])  # cases 0, 1 nearly perfect, 2..4 random
    group = torch.tensor([0, 0, 1, 1, 1])
    obj = FEBS(2)
    obj(torch.zeros(5, dtype=torch.float64), group, logits=logits, target=target)
    assert float(obj.scale[0]) == pytest.approx(TANH1)
    assert float(obj.scale[1]) < float(obj.scale[0])


def test_single_group_and_all_unknown():
    logits, target = _batch(2)
    obj = FEBS(2)
    losses = PerCaseDiceCE()(logits, target)
    obj(losses, torch.ones(5, dtype=torch.long), logits=logits, target=target)
    assert obj.scale.tolist() == pytest.approx([TANH1, TANH1])
    loss = obj(losses, torch.full((5,), -1), logits=logits, target=target)
    dice, ce = PerCaseDiceCE().components(logits, target, prob_scale=torch.full((5,), TANH1))
    torch.testing.assert_close(loss, (0.5 * dice + 0.5 * ce).mean())


@pytest.mark.parametrize(
    "options",
    [
        dict(include_background=False),
        dict(weight=[0.5, 1.0, 2.0]),
        dict(weight=[0.5, 1.0, 2.0], include_background=False),
    ],
)
def test_matches_scaled_per_case_loss_with_options(options):
    logits, target = _batch(3)
    logits.requires_grad_(True)
    group = torch.tensor([0, 1, 1, 0, 1])
    loss_fn = PerCaseDiceCE(**options)
    obj = FEBS(2, **options)
    loss = obj(loss_fn(logits, target), group, logits=logits, target=target)
    scale = obj.scale[group].double()
    dice, ce = loss_fn.components(logits, target, prob_scale=scale)
    expected = (0.5 * dice + 0.5 * ce).mean()
    torch.testing.assert_close(loss, expected)
    (g1,) = torch.autograd.grad(loss, logits)
    (g2,) = torch.autograd.grad(expected, logits)
    torch.testing.assert_close(g1, g2)


def test_binary_single_channel():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(4, 1, 5, 5, generator=g, dtype=torch.float64)
    target = torch.randint(0, 2, (4, 1, 5, 5), generator=g)
    group = torch.tensor([0, 0, 1, 1])
    obj = FEBS(2)
    loss = obj(PerCaseDiceCE()(logits, target), group, logits=logits, target=target)
    dice, ce = PerCaseDiceCE().components(logits, target, prob_scale=obj.scale[group].double())
    torch.testing.assert_close(loss, (0.5 * dice + 0.5 * ce).mean())


def test_requires_logits_and_target():
    with pytest.raises(DuetfairError, match="logits"):
        FEBS(2)(torch.zeros(2), torch.zeros(2, dtype=torch.long))
