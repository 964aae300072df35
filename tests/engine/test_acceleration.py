"""What the trainer does for an accelerator: determinism setting, device-resident cache, the
lagged finite-loss check and ``train.compile`` (the GPU figures are in docs/benchmarks.md)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from duetfair.data import build_datasets
from duetfair.engine.acceleration import LossMonitor, compile_model, device_source, resolve_determinism
from duetfair.engine.batching import CachedCases
from duetfair.engine.config import ExperimentConfig, load_config
from duetfair.engine.trainer import train
from duetfair.models.registry import build_model


@pytest.mark.parametrize(
    "setting, device, enabled, says",
    [
        ("auto", "cpu", True, False),
        ("auto", "cuda", False, True),
        (True, "cuda", True, False),
        (False, "cpu", False, False),
    ],
)
def test_resolve_determinism(setting, device: str, enabled: bool, says: bool) -> None:
    resolved = resolve_determinism(setting, torch.device(device))
    assert resolved.enabled is enabled
    assert (resolved.note is not None) is says
    if says:
        assert "train.deterministic=true" in resolved.note


def test_deterministic_setting_parses_and_keeps_old_hashes() -> None:
    for raw, parsed in (("auto", "auto"), ("true", True), (False, False)):
        assert ExperimentConfig(train={"deterministic": raw}).train.deterministic == parsed
    # `auto` (the new default) and an unset `compile` hash like the earlier default `true`, so runs
    # written before these settings existed stay resumable
    assert ExperimentConfig().config_hash() == ExperimentConfig(train={"deterministic": True}).config_hash()
    assert ExperimentConfig().config_hash() != ExperimentConfig(train={"deterministic": False}).config_hash()
    assert ExperimentConfig().config_hash() != ExperimentConfig(train={"compile": True}).config_hash()
    with pytest.raises(ValueError):
        ExperimentConfig(train={"deterministic": "sometimes"})


def test_loss_monitor_reads_one_step_late() -> None:
    monitor = LossMonitor(torch.device("cpu"))
    assert monitor.push(torch.tensor(1.5)) is None
    assert monitor.push(torch.tensor(2.5)) == 1.5
    assert monitor.drain() == 2.5
    assert monitor.drain() is None
    assert math.isnan(LossMonitor(torch.device("cpu")).push(torch.tensor(float("nan"))) or math.nan)


def test_cached_cases_move_whole_and_cut_the_same_batches() -> None:
    data = build_datasets("synthetic", task="fundus2d", n_train=10, n_val=4, n_test=4, image_size=16)["train"]
    cached = CachedCases(data)
    assert cached.nbytes() == sum(t.numel() * t.element_size() for t in (cached.image, cached.label, cached.codes))
    moved = cached.to(torch.device("cpu"))
    order = torch.tensor([3, 1, 7, 0, 9])
    for a, b in zip(cached.batches(order, 2), moved.batches(order, 2)):
        assert torch.equal(a.image, b.image) and torch.equal(a.codes, b.codes) and a.case_ids == b.case_ids
    assert device_source(cached, torch.device("cpu")) is cached  # nothing to move on a CPU


def test_compile_model_keeps_the_state_dict() -> None:
    model = build_model("vit_seg_dmoe", in_channels=3, num_classes=2, num_groups=2, img_size=32, preset="tiny")
    keys = list(model.state_dict())
    compile_model(model, enabled=True)
    assert list(model.state_dict()) == keys  # checkpoints interchangeable with the eager model
    assert "forward_features" in vars(model)
    plain = build_model("vit_seg", in_channels=3, num_classes=2, img_size=32, preset="tiny")
    compile_model(plain, enabled=False)
    assert "forward_features" not in vars(plain)


def test_nan_loss_is_caught_one_step_late_with_the_good_checkpoint_kept(tmp_path: Path, tiny) -> None:
    """The finite-loss check reads losses one step late but still stops the run with the step
    that failed and without overwriting the checkpoint."""
    from duetfair.engine.trainer import NonFiniteLossError, Trainer

    trainer = Trainer(tiny("erm"), tmp_path / "run")
    original = trainer._step

    def poisoned(batch):
        loss = original(batch)
        return loss * float("nan") if trainer.global_step == 1 else loss

    trainer._step = poisoned  # type: ignore[method-assign]
    with pytest.raises(NonFiniteLossError, match="epoch 1 step 2"):
        trainer.fit()
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()


COMPILE_MODELS = ["vit_seg", "vit_seg_dmoe", "vit_seg_moe", "resunet3d", "resunet3d_dmoe"]


@pytest.mark.slow
@pytest.mark.parametrize("model", COMPILE_MODELS)
def test_train_compile_works_for_every_model(tmp_path: Path, model: str) -> None:
    """``train.compile: true`` trains, validates and checkpoints every model, with and without MoE."""
    task = "tumor3d" if model.startswith("resunet") else "fundus2d"
    size = ["data.args.image_size=32"] + (["model.args.feature_size=8"] if task == "tumor3d" else [])
    cfg = load_config(
        f"{task}_erm",
        [
            f"model.name={model}",
            "data.args.n_train=8",
            "data.args.n_val=4",
            "data.args.n_test=4",
            "train.epochs=1",
            "train.batch_size=4",
            "train.compile=true",
            *size,
            *(["model.args.preset=tiny"] if task == "fundus2d" else []),
        ],
    )
    result = train(cfg, tmp_path / "run")
    assert result.status == "completed" and math.isfinite(float(result.history["val_dice"].iloc[-1]))
