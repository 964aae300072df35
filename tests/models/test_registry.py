"""Tests of the segmentation networks and the model registry (the model contract)."""

from __future__ import annotations

import pytest
import torch

from duetfair.errors import DuetfairError
from duetfair.models.registry import MODEL_NAMES, build_model, count_params_flops

# small configurations that run in well under a second on CPU
SMALL = {
    "vit_seg": dict(
        in_channels=3,
        num_classes=3,
        img_size=32,
        dim=32,
        depth=2,
        heads=2,
        patch_size=8,
        head_channels=16,
        decoder_channels=(16, 8, 8),
    ),
    "resunet3d": dict(in_channels=1, num_classes=2, feature_size=4, spatial_dims=2),
    "unet": dict(in_channels=1, num_classes=2, spatial_dims=2, channels=(4, 8, 16), strides=(2, 2), num_res_units=1),
    "segresnet": dict(in_channels=1, num_classes=2, spatial_dims=2, init_filters=8),
    "swinunetr": dict(in_channels=1, num_classes=2, spatial_dims=2, feature_size=12),
}
SHAPES = {
    "vit_seg": (2, 3, 32, 32),
    "resunet3d": (2, 1, 64, 64),
    "unet": (2, 1, 32, 32),
    "segresnet": (2, 1, 32, 32),
    "swinunetr": (2, 1, 64, 64),
}


def _family(name: str) -> str:
    return name.replace("_dmoe", "").replace("_moe", "")


def _build(name: str, **extra) -> torch.nn.Module:
    torch.manual_seed(0)
    kwargs = dict(SMALL[_family(name)])
    if name.endswith("moe"):
        kwargs["moe_kwargs"] = dict(num_experts=4, dropout=0.0, **extra.pop("moe_kwargs", {}))
    kwargs.update(extra)
    return build_model(name, num_groups=3, **kwargs)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_contract_shapes_and_fallback(name: str) -> None:
    model = _build(name)
    shape = SHAPES[_family(name)]
    x = torch.randn(shape)
    model.train()
    logits, feats = model.forward_features(x, torch.tensor([0, 2]))
    assert logits.shape == (shape[0], model.num_classes, *shape[2:])
    assert feats.shape == (shape[0], model.feature_dim)
    assert model.aux_loss().shape == ()
    (logits.mean() + feats.mean()).backward()
    model.eval()
    with torch.no_grad():
        for group in (None, torch.tensor([-1, -1]), torch.tensor([[1], [-1]])):
            out = model(x, group)
            assert out.shape == logits.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["vit_seg_dmoe", "resunet3d_dmoe"])
def test_dmoe_uses_group_and_is_deterministic_in_eval(name: str) -> None:
    model = _build(name).eval()
    x = torch.randn(1, *SHAPES[_family(name)][1:]).expand(3, *SHAPES[_family(name)][1:])
    with torch.no_grad():
        a = model(x, torch.tensor([0, 1, 2]))
        b = model(x, torch.tensor([0, 1, 2]))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a[0], a[1])


@pytest.mark.parametrize("name", ["vit_seg_moe", "resunet3d_moe"])
def test_attribute_blind_moe_ignores_group(name: str) -> None:
    model = _build(name).eval()
    x = torch.randn(SHAPES[_family(name)])
    with torch.no_grad():
        torch.testing.assert_close(model(x, torch.tensor([0, 2])), model(x, None))


@pytest.mark.parametrize("name", ["vit_seg_dmoe", "resunet3d_dmoe"])
def test_gradients_reach_used_experts_and_routers(name: str) -> None:
    model = _build(name, moe_kwargs=dict(noisy_gating=False)).train()
    x = torch.randn(SHAPES[_family(name)])
    group = torch.tensor([0, 2])
    model(x, group).square().mean().backward()
    for moe in model.moe_layers():
        assert moe.experts.w1.grad is not None and (moe.experts.w1.grad.abs().flatten(1).sum(1) > 0).any()
        router = moe.router.weight.grad.abs().flatten(1).sum(1)
        assert (router[[0, 2]] > 0).all() and router[1] == 0


def test_vit_moe_sharing_options() -> None:
    shared = _build("vit_seg_dmoe")
    per_block = _build("vit_seg_dmoe", moe_sharing="per_block")
    assert len(list(shared.moe_layers())) == 1
    assert len(list(per_block.moe_layers())) == SMALL["vit_seg"]["depth"]


def test_aux_loss_sums_over_shared_moe_calls() -> None:
    model = _build("vit_seg_dmoe", moe_kwargs=dict(load_balance_weight=0.1)).train()
    model(torch.randn(SHAPES["vit_seg"]), torch.tensor([0, 1]))
    aux = model.aux_loss()
    assert aux.requires_grad
    # one shared MoE called after each of the `depth` blocks: at least depth * weight (the minimum is 1)
    assert aux.item() >= SMALL["vit_seg"]["depth"] * 0.1 - 1e-6
    model.eval()
    model(torch.randn(SHAPES["vit_seg"]), None)
    assert model.aux_loss().item() == 0.0


@pytest.mark.parametrize("name", ["vit_seg_dmoe", "resunet3d_dmoe", "unet"])
def test_state_dict_round_trip(name: str, tmp_path) -> None:
    a = _build(name).eval()
    path = tmp_path / "model.pt"
    torch.save(a.state_dict(), path)
    b = _build(name)
    with torch.no_grad():
        for p in b.parameters():
            p.add_(1.0)
    b.load_state_dict(torch.load(path, weights_only=True))
    b.eval()
    x = torch.randn(SHAPES[_family(name)])
    with torch.no_grad():
        torch.testing.assert_close(a(x, torch.tensor([1, -1])), b(x, torch.tensor([1, -1])))


def test_resunet_3d_shapes_and_channels() -> None:
    torch.manual_seed(0)
    model = build_model(
        "resunet3d_dmoe",
        in_channels=2,
        num_classes=3,
        num_groups=[2, 3],
        img_size=(64, 64, 64),
        feature_size=2,
        moe_kwargs=dict(num_experts=2, top_k=1),
    )
    assert model.spatial_dims == 3
    assert [m.dim for m in model.moe_layers()] == [2, 2, 4, 8, 16]
    x = torch.randn(1, 2, 64, 64, 64)
    logits, feats = model.forward_features(x, torch.tensor([[1, -1]]))
    assert logits.shape == (1, 3, 64, 64, 64) and feats.shape == (1, 16)


def test_param_flop_table_with_and_without_dmoe() -> None:
    rows = {}
    for name in ("vit_seg", "vit_seg_dmoe"):
        model = _build(name)
        rows[name] = count_params_flops(model, SHAPES["vit_seg"], group=torch.tensor([0, 1]))
    base, dmoe = rows["vit_seg"], rows["vit_seg_dmoe"]
    cfg = SMALL["vit_seg"]
    dim, depth, tokens = cfg["dim"], cfg["depth"], 2 * (32 // 8) ** 2
    # dMoE adds, per block, top_k=2 expert MLPs (2 matmuls of dim x 4 dim) per token + the router
    expert_flops = depth * tokens * 2 * (2 * 2 * dim * 4 * dim)
    router_flops = depth * tokens * 2 * dim * 2 * 4
    assert dmoe["flops"] - base["flops"] == expert_flops + router_flops
    moe_params = 4 * (2 * dim * 4 * dim + 4 * dim + dim) + 3 * (dim * 8 + 8)
    assert dmoe["params"] - base["params"] == moe_params
    assert set(base) == {"params", "flops", "gflops"}


@pytest.mark.parametrize(
    "name, kwargs, match",
    [
        ("nope", {}, "unknown name"),
        ("vit_seg", dict(img_size=30), "divisible"),
        ("vit_seg", dict(preset="huge"), "preset"),
        ("vit_seg", dict(colour=1), "unknown option"),
        ("unet", dict(moe_kwargs={}), "moe_kwargs"),
        ("resunet3d", dict(bogus=1), "bogus"),
    ],
)
def test_build_errors(name: str, kwargs: dict, match: str) -> None:
    with pytest.raises(DuetfairError, match=match):
        build_model(name, in_channels=1, num_classes=2, **kwargs)


def test_input_errors() -> None:
    model = _build("vit_seg").eval()
    with pytest.raises(DuetfairError, match="expected image"):
        model(torch.randn(2, 1, 32, 32))
    with pytest.raises(DuetfairError, match="img_size"):
        model(torch.randn(2, 3, 64, 64))
    unet3 = _build("resunet3d")
    with pytest.raises(DuetfairError, match="divisible"):
        unet3(torch.randn(1, 1, 48, 40))


def test_resunet_small_inputs_switch_norm() -> None:
    torch.manual_seed(0)
    model = build_model(
        "resunet3d_dmoe",
        in_channels=1,
        num_classes=2,
        num_groups=2,
        img_size=[32, 32, 32],
        feature_size=2,
        moe_kwargs=dict(num_experts=2),
    ).train()
    logits = model(torch.randn(1, 1, 32, 32, 32), torch.tensor([1]))
    assert logits.shape == (1, 2, 32, 32, 32) and torch.isfinite(logits).all()
    plain = build_model("resunet3d", in_channels=1, num_classes=2, spatial_dims=3, feature_size=2).train()
    with pytest.raises(DuetfairError, match=">= 64"):
        plain(torch.randn(1, 1, 32, 32, 32))
