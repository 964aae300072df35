"""Tests of the vectorised (distribution-aware) MoE layer against a loop-over-tokens reference."""

from __future__ import annotations

import pytest
import torch

from duetfair.errors import DuetfairError
from duetfair.models.moe import DistributionAwareMoE, MoE


def reference_moe(moe: DistributionAwareMoE, x: torch.Tensor, group: torch.Tensor | None) -> torch.Tensor:
    """Plain loop over samples and tokens: pick the router, top-k, softmax, sum of gated experts.

    Written independently of the layer's dispatch (noise and dropout must be off). Router choice:
    sum over attributes of the attribute-value router ("sum" mode), or the mean router when a code
    is unknown.
    """
    r = moe.router
    B, N, C = x.shape
    E, k = moe.num_experts, moe.top_k
    out = torch.zeros_like(x)
    for b in range(B):
        codes = [-1] * len(r.cards) if group is None else (group[b].reshape(-1).tolist())
        if r.blind:
            codes = [0]
        W = torch.zeros(C, 2 * E)
        bias = torch.zeros(2 * E)
        start = 0
        for a, card in enumerate(r.cards):
            block_w, block_b = r.weight[start : start + card], r.bias[start : start + card]
            W = W + (block_w[codes[a]] if codes[a] >= 0 else block_w.mean(0))
            bias = bias + (block_b[codes[a]] if codes[a] >= 0 else block_b.mean(0))
            start += card
        for n in range(N):
            logits = (x[b, n] @ W + bias)[:E]
            vals, idx = logits.topk(k)
            gates = torch.softmax(vals, 0)
            for j in range(k):
                out[b, n] += gates[j] * moe.experts.expert(int(idx[j]), x[b, n : n + 1])[0]
    return out


def _layer(dim=16, groups=3, **kw) -> DistributionAwareMoE:
    torch.manual_seed(0)
    kw.setdefault("dropout", 0.0)
    kw.setdefault("noisy_gating", False)
    return DistributionAwareMoE(dim, groups, **kw).eval()


@pytest.mark.parametrize("dispatch", ["split", "grouped_mm", "blocked"])
@pytest.mark.parametrize("top_k", [1, 2, 3])
def test_matches_loop_reference(dispatch: str, top_k: int) -> None:
    moe = _layer(top_k=top_k, dispatch=dispatch)
    x = torch.randn(4, 9, 16)
    group = torch.tensor([0, 2, 1, 2])
    torch.testing.assert_close(moe(x, group), reference_moe(moe, x, group), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dispatch", ["split", "grouped_mm", "blocked"])
def test_gradients_match_reference(dispatch: str) -> None:
    moe = _layer(dispatch=dispatch)
    x = torch.randn(3, 5, 16, requires_grad=True)
    group = torch.tensor([0, 1, -1])
    moe(x, group).square().sum().backward()
    ours = {n: p.grad.clone() for n, p in moe.named_parameters()}
    gx = x.grad.clone()
    moe.zero_grad()
    x.grad = None
    reference_moe(moe, x, group).square().sum().backward()
    for n, p in moe.named_parameters():
        torch.testing.assert_close(ours[n], p.grad, atol=1e-4, rtol=1e-4, msg=n)
    torch.testing.assert_close(gx, x.grad, atol=1e-4, rtol=1e-4)


def test_unknown_group_uses_mean_router() -> None:
    moe = _layer()
    x = torch.randn(2, 7, 16)
    out_unknown = moe(x, torch.tensor([-1, -1]))
    torch.testing.assert_close(out_unknown, moe(x, None))
    torch.testing.assert_close(out_unknown, reference_moe(moe, x, None), atol=1e-5, rtol=1e-5)
    # the clean logits of the fallback are the mean of the group routers' logits
    clean_unknown, _ = moe.router(x, None)
    per_group = torch.stack([moe.router(x, torch.full((2,), g))[0] for g in range(3)])
    torch.testing.assert_close(clean_unknown, per_group.mean(0), atol=1e-5, rtol=1e-5)


def test_groups_route_differently() -> None:
    moe = _layer()
    x = torch.randn(1, 32, 16).expand(3, 32, 16)
    out = moe(x, torch.tensor([0, 1, 2]))
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[1], out[2])


def test_multi_attribute_sum_matches_reference() -> None:
    moe = _layer(groups=[2, 3], multi_attribute="sum")
    x = torch.randn(4, 6, 16)
    group = torch.tensor([[0, 2], [1, -1], [-1, 0], [-1, -1]])
    torch.testing.assert_close(moe(x, group), reference_moe(moe, x, group), atol=1e-5, rtol=1e-5)
    # a partially unknown sample still depends on its known attribute
    a = moe(x[:1], torch.tensor([[0, -1]]))
    b = moe(x[:1], torch.tensor([[1, -1]]))
    assert not torch.allclose(a, b)


def test_multi_attribute_intersection() -> None:
    moe = _layer(groups=[2, 3], multi_attribute="intersection")
    assert moe.router.weight.shape[0] == 6
    x = torch.randn(1, 6, 16).expand(6, 6, 16)
    codes = torch.tensor([[a, b] for a in range(2) for b in range(3)])
    out = moe(x, codes)
    # each combination has its own router: equal to a single-attribute layer on the combined id
    single = _layer(groups=6)
    single.load_state_dict(moe.state_dict())
    torch.testing.assert_close(out, single(x, torch.arange(6)), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(moe(x[:1], torch.tensor([[1, -1]])), single(x[:1], None), atol=1e-6, rtol=1e-6)


def test_attribute_blind_ignores_group() -> None:
    moe = MoE(16, dropout=0.0, noisy_gating=False).eval()
    x = torch.randn(2, 5, 16)
    torch.testing.assert_close(moe(x, torch.tensor([3, 7])), moe(x, None))


def test_noise_only_in_training_by_default() -> None:
    torch.manual_seed(0)
    moe = DistributionAwareMoE(16, 3, dropout=0.0)
    x, g = torch.randn(2, 64, 16), torch.tensor([0, 1])
    moe.eval()
    torch.testing.assert_close(moe(x, g), moe(x, g))
    moe.eval_noise = True  # the reference behaviour: random at evaluation
    assert not torch.allclose(moe(x, g), moe(x, g))


def test_load_balance_loss() -> None:
    torch.manual_seed(0)
    off = DistributionAwareMoE(16, 2).train()
    x, g = torch.randn(2, 40, 16), torch.tensor([0, 1])
    off(x, g)
    assert off.aux_loss().item() == 0.0
    on = DistributionAwareMoE(16, 2, load_balance_weight=0.5).train()
    on(x, g)
    aux = on.aux_loss()
    assert aux.requires_grad and aux.item() > 0
    aux.backward()
    assert on.router.weight.grad is not None and on.router.weight.grad.abs().sum() > 0
    on.eval()
    on(x, g)
    assert on.aux_loss().item() == 0.0


def test_every_used_expert_and_router_gets_gradient() -> None:
    torch.manual_seed(0)
    moe = DistributionAwareMoE(16, 4, num_experts=8, dropout=0.0, noisy_gating=False).train()
    x = torch.randn(3, 6, 16, requires_grad=True)
    group = torch.tensor([0, 2, 3])
    moe(x, group).sum().backward()
    _, chosen, _ = moe.route(x, group)
    used = torch.zeros(8, dtype=torch.bool)
    used[chosen.unique()] = True
    for name in ("w1", "b1", "w2", "b2"):
        per_expert = getattr(moe.experts, name).grad.abs().flatten(1).sum(1)
        assert (per_expert[used] > 0).all(), name
        assert (per_expert[~used] == 0).all(), name
    router_grad = moe.router.weight.grad.abs().flatten(1).sum(1)
    assert (router_grad[[0, 2, 3]] > 0).all() and router_grad[1] == 0  # group 1 absent from the batch
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_state_dict_round_trip() -> None:
    a = _layer(groups=[2, 3])
    b = DistributionAwareMoE(16, [2, 3], dropout=0.0, noisy_gating=False).eval()
    b.load_state_dict(a.state_dict())
    x, g = torch.randn(2, 4, 16), torch.tensor([[1, 2], [0, -1]])
    torch.testing.assert_close(a(x, g), b(x, g))


@pytest.mark.parametrize(
    "kwargs, x, group, match",
    [
        ({}, torch.randn(2, 4, 8), None, "expected tokens"),
        ({}, torch.randn(2, 4, 16), torch.tensor([0, 3]), "codes must be"),
        ({}, torch.randn(2, 4, 16), torch.tensor([0]), "expected shape"),
    ],
)
def test_bad_input(kwargs, x, group, match) -> None:
    with pytest.raises(DuetfairError, match=match):
        _layer(**kwargs)(x, group)


def test_bad_config() -> None:
    with pytest.raises(DuetfairError, match="top_k"):
        DistributionAwareMoE(16, 2, num_experts=2, top_k=3)
    with pytest.raises(DuetfairError, match="num_groups"):
        DistributionAwareMoE(16, [2, 0])
    with pytest.raises(DuetfairError, match="multi_attribute"):
        DistributionAwareMoE(16, [2, 2], multi_attribute="product")  # type: ignore[arg-type]
    with pytest.raises(DuetfairError, match="aligned"):
        DistributionAwareMoE(5, 2, dispatch="grouped_mm")(torch.randn(1, 3, 5), None)


@pytest.mark.slow
@pytest.mark.parametrize("dispatch", ["auto", "blocked"])
def test_compiles_without_graph_breaks(dispatch: str) -> None:
    moe = _layer(dim=16, dispatch=dispatch)
    x, g = torch.randn(2, 8, 16), torch.tensor([0, -1])
    explanation = torch._dynamo.explain(moe)(x, g)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    compiled = torch.compile(moe, fullgraph=True)
    torch.testing.assert_close(compiled(x, g), moe(x, g), atol=1e-5, rtol=1e-5)
