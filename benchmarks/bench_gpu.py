"""GPU speed of dMoE and of the trainer at the papers' scale (one CUDA device, bf16).

Four measurements, each against its baseline in the same run:

1. ``layer``: the dMoE layer (forward + backward, training mode) against the FLOP-equivalent dense
   MLP (one expert applied to ``top_k`` copies of every token) at the paper shapes: ViT-B tokens
   (B 42, N 196, C 768) and the first two stages of the 3D ResUNet f = 24 at 64^3 (B 2). Modes:
   fp32, bf16 autocast with fp32 master weights (what the trainer does) and, for the ViT-B shape,
   both compiled with ``torch.compile``; under bf16 autocast also each dispatch path.
2. ``model``: full training step (bf16 autocast, AdamW), plain model against its dMoE variant:
   ViT-B/16 at 224 x 224 (batch 42) and ResUNet f = 24 at 64^3 (batch 2): ms per step, images per
   second, peak memory, and the forward-FLOP ratio (counted on the CPU, routed experts only).
3. ``trainer``: one epoch of :class:`duetfair.engine.trainer.Trainer` (paper-size fundus2d,
   ViT-B/16, second epoch timed) against a bare loop over the same model, objective and data
   (no schedule, no bookkeeping), and the trainer with ``train.deterministic`` true against auto.
4. ``paper`` (optional, ``--paper-smoke``): ``duetfair benchmark --size paper`` for tumor3d and
   fundus2d, every method, one epoch on a few cases: does every method run on the GPU.

Prints tables and writes JSON (``--out``). Without a GPU it says "no GPU" and exits 0;
``--smoke`` runs every code path with tiny shapes on any device (used by the tests).

    python benchmarks/bench_gpu.py --out benchmarks/results/bench_gpu.json
"""

from __future__ import annotations

import argparse
import functools
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_moe import DenseEquivalent  # noqa: E402

from duetfair.io import write_json  # noqa: E402
from duetfair.models.moe import DistributionAwareMoE  # noqa: E402

NUM_GROUPS = 3
LAYER_SHAPES = {
    "vit_b_tokens": (42, 196, 768),
    "resunet_f24_stage1": (2, 32**3, 24),
    "resunet_f24_stage2": (2, 16**3, 48),
}
SMOKE_LAYER_SHAPES = {"vit_b_tokens": (2, 16, 32), "resunet_f24_stage1": (2, 64, 8)}
Result = dict[str, Any]


def timed_ms(fns: dict[str, Callable[[], Any]], device: torch.device, repeats: int, iters: int) -> dict[str, float]:
    """Median ms per call of each function, round-robin over ``repeats`` blocks of ``iters`` calls
    (CUDA events on a GPU, wall clock elsewhere)."""
    for fn in fns.values():  # warm-up (also compiles)
        fn()
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(iters):
                    fn()
                end.record()
                end.synchronize()
                times[name].append(start.elapsed_time(end) / iters)
            else:
                t0 = time.perf_counter()
                for _ in range(iters):
                    fn()
                times[name].append((time.perf_counter() - t0) * 1e3 / iters)
    return {name: statistics.median(t) for name, t in times.items()}


def peak_gib(fn: Callable[[], Any], device: torch.device) -> float:
    """Peak memory allocated (GiB) by one call of ``fn`` on a GPU (NaN elsewhere)."""
    if device.type != "cuda":
        return float("nan")
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated(device) / 2**30


def count_syncs(fn: Callable[[], Any], device: torch.device) -> int:
    """Host synchronisations of one call of ``fn`` (CUDA sync debug mode; -1 elsewhere)."""
    if device.type != "cuda":
        return -1
    import warnings

    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def kernel_profile(fn: Callable[[], Any], device: torch.device, top: int = 12) -> list[Result]:
    """The ``top`` operators of ``fn`` by device time (ms per call of ``fn``), from ``torch.profiler``."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    fn()
    with profile(activities=activities) as prof:
        for _ in range(3):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
    attr = "device_time_total" if device.type == "cuda" else "cpu_time_total"
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, attr, 0.0), reverse=True)
    rows = [{"op": e.key[:60], "ms": round(getattr(e, attr, 0.0) / 3e3, 3), "calls": e.count // 3} for e in events]
    return rows[:top]


def autocast(device: torch.device, on: bool) -> Any:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=on)


def layer_step(module: nn.Module, x: torch.Tensor, group: torch.Tensor, bf16: bool) -> Callable[[], None]:
    def step() -> None:
        module.zero_grad(set_to_none=True)
        x.grad = None
        with autocast(x.device, bf16):
            out = module(x, group)
        out.float().square().mean().backward()

    return step


def bench_layer(device: torch.device, shapes: dict, repeats: int, compile_shapes: set[str]) -> list[Result]:
    rows = []
    for name, (B, N, C) in shapes.items():
        torch.manual_seed(0)
        x = torch.randn(B, N, C, device=device, requires_grad=True)
        group = (torch.arange(B) % NUM_GROUPS).to(device)
        dmoe = DistributionAwareMoE(C, NUM_GROUPS).to(device).train()
        dense = DenseEquivalent(C).to(device).train()
        fns: dict[str, Callable[[], None]] = {}
        for mode, bf16 in (("fp32", False), ("bf16", True)):
            fns[f"dmoe_{mode}"] = layer_step(dmoe, x, group, bf16)
            fns[f"dense_{mode}"] = layer_step(dense, x, group, bf16)
        for dispatch in ("grouped_mm", "blocked", "split"):
            variant = DistributionAwareMoE(C, NUM_GROUPS, dispatch=dispatch).to(device).train()
            variant.load_state_dict(dmoe.state_dict())
            if dispatch != "grouped_mm" or variant.experts.grouped_mm_ok(x, torch.bfloat16):
                fns[f"dmoe_bf16_{dispatch}"] = layer_step(variant, x, group, True)
        if name in compile_shapes:
            fns["dmoe_bf16_compiled"] = layer_step(torch.compile(dmoe), x, group, True)
            fns["dense_bf16_compiled"] = layer_step(torch.compile(dense), x, group, True)
        ms = timed_ms(fns, device, repeats, iters=5)
        row: Result = {"shape": name, "B": B, "N": N, "C": C, **{f"{k}_ms": round(v, 3) for k, v in ms.items()}}
        for mode in ("fp32", "bf16", "bf16_compiled"):
            if f"dmoe_{mode}" in ms:
                row[f"ratio_{mode}"] = round(ms[f"dmoe_{mode}"] / ms[f"dense_{mode}"], 3)
        row["host_syncs_dmoe_bf16"] = count_syncs(fns["dmoe_bf16"], device)
        row["peak_gib_dmoe_bf16"] = round(peak_gib(fns["dmoe_bf16"], device), 3)
        row["peak_gib_dense_bf16"] = round(peak_gib(fns["dense_bf16"], device), 3)
        if name in compile_shapes:
            row["profile_dmoe_bf16"] = kernel_profile(fns["dmoe_bf16"], device)
            row["profile_dense_bf16"] = kernel_profile(fns["dense_bf16"], device)
        rows.append(row)
        print_rows([row], [c for c in row if not c.startswith("profile")])
        for key in ("profile_dmoe_bf16", "profile_dense_bf16"):
            if key in row:
                print(f"-- {key}: top operators by device time")
                print_rows(row[key], ["op", "ms", "calls"])
    return rows


MODEL_SETUPS = {
    "vit_b16_224": ("vit_seg", dict(preset="base", img_size=224, in_channels=3, num_classes=3), (42, 3, 224, 224)),
    "resunet_f24_64": (
        "resunet3d",
        dict(feature_size=24, img_size=64, in_channels=1, num_classes=2),
        (2, 1, 64, 64, 64),
    ),
}
SMOKE_MODEL_SETUPS = {
    "vit_tiny_32": ("vit_seg", dict(preset="tiny", img_size=32, in_channels=3, num_classes=3), (2, 3, 32, 32)),
    "resunet_f4_64": ("resunet3d", dict(feature_size=4, img_size=64, in_channels=1, num_classes=2), (1, 1, 64, 64, 64)),
}


def model_step(model: nn.Module, shape: tuple, device: torch.device, compiled: bool) -> Callable[[], None]:
    """One AdamW training step of ``model`` under bf16 autocast on random data of ``shape``."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    image = torch.randn(shape, device=device)
    group = (torch.arange(shape[0]) % NUM_GROUPS).to(device)
    target = torch.randint(0, model.num_classes, (shape[0], *shape[2:]), device=device)  # type: ignore[arg-type]
    forward = torch.compile(model) if compiled else model

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(device, True):
            logits = forward(image, group)
        loss = nn.functional.cross_entropy(logits.float(), target)
        loss.backward()
        opt.step()

    return step


def bench_model(device: torch.device, setups: dict, repeats: int, compiled: bool) -> list[Result]:
    from duetfair.models.registry import build_model, count_params_flops

    rows = []
    for label, (base, kwargs, shape) in setups.items():
        row: Result = {"model": label, "input": list(shape), "compiled": compiled}
        for variant in (base, f"{base}_dmoe"):
            torch.manual_seed(0)
            cpu_model = build_model(variant, num_groups=NUM_GROUPS, **kwargs)
            flops = count_params_flops(cpu_model, (1, *shape[1:]), group=torch.zeros(1, dtype=torch.long))
            model = cpu_model.to(device).train()
            step = model_step(model, shape, device, compiled)
            key = "dmoe" if variant.endswith("dmoe") else "plain"
            row[f"step_ms_{key}"] = round(timed_ms({key: step}, device, repeats, iters=3)[key], 2)
            row[f"images_per_s_{key}"] = round(shape[0] * 1e3 / row[f"step_ms_{key}"], 1)
            row[f"peak_gib_{key}"] = round(peak_gib(step, device), 2)
            row[f"gflops_{key}"] = round(flops["gflops"], 3)
            del model, step, cpu_model
            if device.type == "cuda":
                torch.cuda.empty_cache()
        row["time_ratio"] = round(row["step_ms_dmoe"] / row["step_ms_plain"], 3)
        row["flop_ratio"] = round(row["gflops_dmoe"] / row["gflops_plain"], 3)
        row["time_over_flop_ratio"] = round(row["time_ratio"] / row["flop_ratio"], 3)
        row["memory_ratio"] = round(row["peak_gib_dmoe"] / row["peak_gib_plain"], 3)
        rows.append(row)
        print_rows([row], list(row))
    return rows


def trainer_config(device: torch.device, smoke: bool, deterministic: Any, out: Path) -> Any:
    from duetfair.engine.config import load_config
    from duetfair.experiments.methods import size_overrides

    overrides = size_overrides("fundus2d", "paper") + [
        "data.args.n_train=16" if smoke else "data.args.n_train=336",
        "data.args.n_val=4" if smoke else "data.args.n_val=42",
        "data.args.n_test=4",
        "train.epochs=2",
        f"train.device={device.type}",
        f"train.deterministic={str(deterministic).lower()}",
        "train.tensorboard=false",
        "train.progress=false",
        f"output_dir={out}",
    ]
    if smoke:
        overrides += ["model.args.preset=tiny", "data.args.image_size=32", "train.batch_size=4", "train.amp=off"]
    return load_config("fundus2d_fair_dro", overrides)


def bare_loop_seconds(trainer: Any, epochs: int) -> float:
    """Seconds of the last of ``epochs`` epochs of a bare loop over the trainer's model, objective,
    optimiser and (device) data: forward, backward, step; nothing else."""
    from duetfair.engine.evaluate import autocast_context

    source, bs, device = trainer.train_source, trainer.cfg.train.batch_size, trainer.device
    seconds = float("nan")
    for _ in range(epochs):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for batch in source.batches(torch.randperm(len(source)), bs, drop_last=True):
            codes = batch.codes.to(device)
            with autocast_context(device, trainer.amp_dtype):
                total = trainer.step_module(
                    batch.image.to(device),
                    batch.label.to(device),
                    trainer.grouping.route_codes(codes),
                    trainer.grouping.group_ids(codes),
                    batch.case_ids,
                )
            trainer.optimizer.zero_grad(set_to_none=True)
            total.backward()
            trainer.optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    return seconds


def bench_trainer(device: torch.device, smoke: bool, workdir: Path, compiled: bool) -> list[Result]:
    from duetfair.engine.trainer import Trainer

    rows = []
    for deterministic in ("auto", True):
        cfg = trainer_config(device, smoke, deterministic, workdir / f"det_{deterministic}")
        trainer = Trainer(cfg, workdir / f"det_{deterministic}")
        result = trainer.fit()
        n = trainer.steps_per_epoch * cfg.train.batch_size
        epoch_s = float(result.history["epoch_seconds"].iloc[-1])
        row: Result = {"deterministic": str(deterministic), "images": n, "trainer_epoch_s": round(epoch_s, 3)}
        row["trainer_images_per_s"] = round(n / epoch_s, 1)
        if deterministic == "auto":
            first = torch.arange(cfg.train.batch_size)
            batch = next(iter(trainer.train_source.batches(first, cfg.train.batch_size)))
            row["host_syncs_per_step"] = count_syncs(functools.partial(trainer._step, batch), device)
            bare = bare_loop_seconds(trainer, epochs=2)
            row["bare_epoch_s"] = round(bare, 3)
            row["bare_images_per_s"] = round(n / bare, 1)
            row["trainer_over_bare_throughput"] = round(bare / epoch_s, 3)
        rows.append(row)
        print_rows([row], list(row))
    rows[1]["deterministic_cost"] = round(rows[1]["trainer_epoch_s"] / rows[0]["trainer_epoch_s"], 3)
    if compiled:
        rows.append(compiled_trainer_row(device, smoke, workdir / "compiled"))
        print_rows(rows[-1:], list(rows[-1]))
    return rows


def compiled_trainer_row(device: torch.device, smoke: bool, workdir: Path) -> Result:
    """The trainer's epoch with ``train.compile: true`` (same run otherwise)."""
    from duetfair.engine.trainer import Trainer

    cfg = trainer_config(device, smoke, "auto", workdir)
    cfg.train.compile = True
    trainer = Trainer(cfg, workdir)
    result = trainer.fit()
    n = trainer.steps_per_epoch * cfg.train.batch_size
    epoch_s = float(result.history["epoch_seconds"].iloc[-1])
    return {
        "deterministic": "auto",
        "compile": True,
        "images": n,
        "trainer_epoch_s": round(epoch_s, 3),
        "trainer_images_per_s": round(n / epoch_s, 1),
        "first_epoch_s": round(float(result.history["epoch_seconds"].iloc[0]), 1),
        "val_dice": round(float(result.history["val_dice"].iloc[-1]), 4),
    }


def paper_smoke(workdir: Path, timeout: int, tasks: list[str]) -> list[Result]:
    """``duetfair benchmark --size paper`` for both families, every method, one tiny epoch."""
    rows = []
    sizes = {"tumor3d": ["n_train=8", "n_val=12", "n_test=12"], "fundus2d": ["n_train=84", "n_val=12", "n_test=12"]}
    for task in tasks:
        data = sizes[task]
        cmd = [sys.executable, "-m", "duetfair", "benchmark", "--task", task, "--method", "all", "--size", "paper"]
        cmd += ["--seeds", "1", "--out", str(workdir / f"paper_{task}"), "--set", "train.epochs=1"]
        cmd += [arg for d in data for arg in ("--set", f"data.args.{d}")]
        cmd += ["--set", "eval.metrics=[dice,iou]"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-12:]
        rows.append({"task": task, "rc": proc.returncode, "seconds": round(time.perf_counter() - t0, 1), "tail": tail})
        print(f"paper smoke {task}: exit {proc.returncode} in {rows[-1]['seconds']} s")
        print("\n".join("  " + line for line in tail))
    return rows


def print_rows(rows: list[Result], columns: list[str]) -> None:
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(columns, widths)))
    sys.stdout.flush()


def environment(device: torch.device) -> Result:
    env: Result = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, cuda=torch.version.cuda, memory_gib=round(props.total_memory / 2**30, 1))
        try:
            smi = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True
            )
            env["driver"] = smi.stdout.strip()
        except OSError:
            env["driver"] = "unknown"
    return env


def main(argv: list[str] | None = None) -> Result:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="layer,model,trainer", help="comma-separated: layer,model,trainer")
    parser.add_argument("--repeats", type=int, default=5, help="timed blocks per measurement (median)")
    parser.add_argument(
        "--compile-models", action="store_true", help="also time the compiled full models and a train.compile epoch"
    )
    parser.add_argument("--paper-smoke", action="store_true", help="run every method at --size paper briefly")
    parser.add_argument("--paper-tasks", default="tumor3d,fundus2d", help="tasks of --paper-smoke")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on any device: exercise every path")
    parser.add_argument("--workdir", type=Path, default=Path("runs/bench_gpu"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_gpu.json")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available() and not args.smoke:
        print("no GPU: bench_gpu measures a CUDA device; nothing to do here (use --smoke to exercise the code)")
        result: Result = {"benchmark": "bench_gpu", "gpu": None, "skipped": "no GPU"}
        write_json(args.out, result)
        return result
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sections = set(args.sections.split(","))
    result = {"benchmark": "bench_gpu", "smoke": args.smoke, "environment": environment(device)}
    print(result["environment"])
    if "layer" in sections:
        shapes = SMOKE_LAYER_SHAPES if args.smoke else LAYER_SHAPES
        print("\n== dMoE layer vs FLOP-equivalent dense MLP (forward+backward, ms) ==")
        result["layer"] = bench_layer(device, shapes, args.repeats, {"vit_b_tokens"})
        write_json(args.out, result)
    if "model" in sections:
        setups = SMOKE_MODEL_SETUPS if args.smoke else MODEL_SETUPS
        print("\n== full model training step, bf16 autocast, AdamW ==")
        result["model"] = bench_model(device, setups, args.repeats, compiled=False)
        if args.compile_models:
            result["model_compiled"] = bench_model(device, setups, args.repeats, compiled=True)
        write_json(args.out, result)
    if "trainer" in sections:
        print("\n== trainer epoch vs bare loop; deterministic kernels on vs auto ==")
        result["trainer"] = bench_trainer(device, args.smoke, args.workdir / "trainer", args.compile_models)
        write_json(args.out, result)
    if args.paper_smoke:
        print("\n== duetfair benchmark --size paper, every method, one epoch ==")
        result["paper_smoke"] = paper_smoke(args.workdir, timeout=600, tasks=args.paper_tasks.split(","))
        write_json(args.out, result)
    print(f"\nwrote {args.out}")
    return result


if __name__ == "__main__":
    main()
