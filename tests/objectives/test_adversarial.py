"""Adversarial objective: gradient reversal, unknown exclusion, the head learns."""

import pytest
import torch
import torch.nn.functional as F

from duetfair.errors import DuetfairError
from duetfair.objectives.adversarial import Adversarial, grad_reverse


def test_grad_reverse_negates_and_scales():
    x = torch.randn(4, 3, requires_grad=True)
    (grad_reverse(x, 0.5) * torch.arange(3.0)).sum().backward()
    torch.testing.assert_close(x.grad, -0.5 * torch.arange(3.0).expand(4, 3))


def test_loss_value_and_unknown_excluded():
    torch.manual_seed(0)
    obj = Adversarial(3, feature_dim=4, weight=0.7, hidden=8)
    losses = torch.tensor([1.0, 2.0, 3.0, 4.0])
    group = torch.tensor([0, 2, -1, 1])
    feats = torch.randn(4, 4)
    loss = obj(losses, group, features=feats)
    known = group >= 0
    ce = F.cross_entropy(obj.head(feats[known]), group[known])
    torch.testing.assert_close(loss, losses.mean() + 0.7 * ce)
    feats2 = feats.clone()
    feats2[2] += 10.0  # the unknown case's features do not matter
    torch.testing.assert_close(obj(losses, group, features=feats2), loss)


def test_encoder_gets_reversed_gradient_head_gets_normal():
    torch.manual_seed(1)
    obj = Adversarial(2, feature_dim=3, weight=1.0, reversal=1.0, hidden=0)
    feats = torch.randn(5, 3, requires_grad=True)
    group = torch.tensor([0, 1, 1, 0, 1])
    obj(torch.zeros(5), group, features=feats).backward()
    plain = feats.detach().clone().requires_grad_(True)
    F.cross_entropy(obj.head(plain), group).backward()
    torch.testing.assert_close(feats.grad, -plain.grad)
    assert obj.head[1].weight.grad.abs().sum() > 0


def test_head_learns_separable_attribute():
    torch.manual_seed(2)
    group = torch.randint(0, 2, (64,))
    feats = torch.randn(64, 6) + 3.0 * F.one_hot(group, 6).float()
    obj = Adversarial(2, feature_dim=6, weight=1.0, hidden=16)
    opt = torch.optim.Adam(obj.parameters(), lr=0.05)
    first = None
    for _ in range(40):
        opt.zero_grad()
        obj(torch.zeros(64), group, features=feats).backward()
        opt.step()
        first = first if first is not None else obj.log_values()["adversary_ce"]
    assert obj.log_values()["adversary_ce"] < 0.5 * first
    assert obj.log_values()["adversary_accuracy"] > 0.9


def test_all_unknown_batch_is_erm():
    obj = Adversarial(2, feature_dim=3)
    loss = obj(torch.tensor([1.0, 3.0]), torch.tensor([-1, -1]), features=torch.randn(2, 3))
    assert float(loss.detach()) == pytest.approx(2.0)


def test_feature_shape_checked():
    with pytest.raises(DuetfairError, match="features"):
        Adversarial(2, feature_dim=3)(torch.zeros(2), torch.zeros(2, dtype=torch.long), features=torch.randn(2, 4))
