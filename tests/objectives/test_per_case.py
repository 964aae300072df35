"""Per-case Dice + CE: agreement with MONAI DiceCELoss, per-case independence, options."""

import pytest
import torch
from monai.losses import DiceCELoss, DiceLoss

from duetfair.errors import DuetfairError
from duetfair.objectives.per_case import PerCaseDiceCE


def _batch(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(*shape, generator=g, dtype=torch.float64)
    target = torch.randint(0, max(shape[1], 2), (shape[0], 1, *shape[2:]), generator=g)
    return logits, target


@pytest.mark.parametrize("shape", [(3, 4, 8, 8), (2, 3, 6, 5, 4)])
@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("lambdas", [(0.5, 0.5), (1.0, 1.0), (0.3, 0.9)])
def test_batch_mean_matches_monai_dicece(shape, include_background, lambdas):
    logits, target = _batch(shape)
    ours = PerCaseDiceCE(include_background=include_background, lambda_dice=lambdas[0], lambda_ce=lambdas[1])
    monai = DiceCELoss(
        include_background=include_background,
        to_onehot_y=True,
        softmax=True,
        lambda_dice=lambdas[0],
        lambda_ce=lambdas[1],
    )
    per_case = ours(logits, target)
    assert per_case.shape == (shape[0],)
    torch.testing.assert_close(per_case.mean(), monai(logits, target), rtol=1e-10, atol=1e-10)


def test_binary_single_channel_matches_monai_sigmoid():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 1, 7, 7, generator=g, dtype=torch.float64)
    target = torch.randint(0, 2, (3, 1, 7, 7), generator=g)
    ours = PerCaseDiceCE()(logits, target).mean()
    monai = DiceCELoss(sigmoid=True, lambda_dice=0.5, lambda_ce=0.5)(logits, target.double())
    torch.testing.assert_close(ours, monai)


def test_each_case_independent_of_batch():
    logits, target = _batch((4, 3, 6, 6), seed=2)
    loss_fn = PerCaseDiceCE()
    together = loss_fn(logits, target)
    alone = torch.cat([loss_fn(logits[i : i + 1], target[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(together, alone)


def test_target_without_channel_dim_is_accepted():
    logits, target = _batch((2, 3, 5, 5), seed=3)
    loss_fn = PerCaseDiceCE()
    torch.testing.assert_close(loss_fn(logits, target[:, 0]), loss_fn(logits, target))


def test_class_weights_dice_matches_monai_and_ce_is_per_case_weighted_mean():
    logits, target = _batch((2, 3, 6, 6), seed=4)
    w = torch.tensor([0.2, 1.0, 3.0], dtype=torch.float64)
    loss_fn = PerCaseDiceCE(weight=w, include_background=False)
    dice, ce = loss_fn.components(logits, target)
    monai_dice = DiceLoss(include_background=False, to_onehot_y=True, softmax=True, weight=w[1:], reduction="none")
    torch.testing.assert_close(dice, monai_dice(logits, target).reshape(2, -1).mean(1))
    voxel = torch.nn.functional.cross_entropy(logits, target[:, 0], reduction="none").reshape(2, -1)
    vw = w[target[:, 0]].reshape(2, -1)
    torch.testing.assert_close(ce, (voxel * vw).sum(1) / vw.sum(1))
    # one case: equal to MONAI DiceCELoss with the same weights
    single = loss_fn(logits[:1], target[:1])[0]
    ref = DiceCELoss(
        include_background=False, to_onehot_y=True, softmax=True, weight=w, lambda_dice=0.5, lambda_ce=0.5
    )(logits[:1], target[:1])
    torch.testing.assert_close(single, ref)


def test_prob_scale_raises_dice_of_perfect_prediction():
    target = torch.zeros(2, 1, 4, 4, dtype=torch.long)
    target[:, :, :2] = 1
    logits = torch.where(torch.nn.functional.one_hot(target[:, 0], 2).movedim(-1, 1).bool(), 20.0, -20.0).double()
    loss_fn = PerCaseDiceCE()
    dice, _ = loss_fn.components(logits, target)
    scaled, _ = loss_fn.components(logits, target, prob_scale=torch.tensor([1.0, 0.5]))
    assert dice.max() < 1e-6
    torch.testing.assert_close(scaled[0], dice[0])
    # 2*0.5*n / (0.5*n + n) = 2/3 per class -> loss 1/3
    assert abs(float(scaled[1]) - 1 / 3) < 1e-4


def test_gradient_flows_per_case():
    logits, target = _batch((3, 3, 4, 4), seed=5)
    logits.requires_grad_(True)
    PerCaseDiceCE()(logits, target)[1].backward()
    assert logits.grad[1].abs().sum() > 0
    assert logits.grad[0].abs().sum() == 0 and logits.grad[2].abs().sum() == 0


@pytest.mark.parametrize("bad_target", [torch.zeros(2, 2, 5, 5), torch.zeros(3, 1, 5, 5), torch.zeros(2, 1, 4, 5)])
def test_bad_target_shape_is_rejected(bad_target):
    with pytest.raises(DuetfairError, match="target"):
        PerCaseDiceCE()(torch.randn(2, 3, 5, 5), bad_target.long())


def test_bad_options_are_rejected():
    with pytest.raises(DuetfairError, match="lambda"):
        PerCaseDiceCE(lambda_dice=0, lambda_ce=0)
    with pytest.raises(DuetfairError, match="class weights"):
        PerCaseDiceCE(weight=[1.0, 2.0])(torch.randn(1, 3, 4, 4), torch.zeros(1, 1, 4, 4, dtype=torch.long))
