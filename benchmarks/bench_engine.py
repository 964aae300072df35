"""Trainer overhead: step time of ``duetfair.engine.Trainer`` vs a pure forward/backward loop.

At the demo scale (synthetic fundus, default demo size: 512 training cases of 1x64x64, the tiny
ViT preset, batch 16), the same model, per-case Dice + CE, objective and AdamW are run

* by the trainer (cached data, seeded augmentation, group mapping, objective, NaN check, LR
  schedule, progress bookkeeping: everything a real epoch does except validation), timed by the
  trainer itself (``epoch_seconds`` of ``history.csv`` / steps);
* by a bare loop over the same pre-loaded tensors (index a batch, forward, loss, backward, step).

The two paths alternate epoch by epoch so machine load affects both alike; the figure is the
ratio pure / trainer of the median step times (target >= 0.85). Methods: ERM on the plain ViT and
FairDRO on the dMoE ViT (the heaviest demo method).

    python benchmarks/bench_engine.py --epochs 4

Prints a table and writes ``benchmarks/results/bench_engine.json``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from duetfair.engine.config import load_config  # noqa: E402
from duetfair.engine.trainer import Trainer, epoch_order  # noqa: E402
from duetfair.experiments.methods import size_overrides  # noqa: E402
from duetfair.io import write_json  # noqa: E402


def pure_epoch(trainer: Trainer, epoch: int) -> tuple[float, int]:
    """One epoch of a bare loop over the trainer's cached tensors with its model/loss/objective."""
    src = trainer.train_source
    model, loss_fn, objective, opt = trainer.model, trainer.loss_fn, trainer.objective, trainer.optimizer
    bs = trainer.cfg.train.batch_size
    order = epoch_order(len(src), 1234, epoch)
    n_steps = trainer.steps_per_epoch
    image_all, label_all, group_all = src.image, src.label, trainer.group_fn(src.codes)
    model.train()
    t0 = time.perf_counter()
    for s in range(n_steps):
        idx = order[s * bs : (s + 1) * bs]
        image, label, group = image_all[idx], label_all[idx], group_all[idx]
        logits = model(image, group=group)
        loss = objective(loss_fn(logits, label), group)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0, n_steps


def measure(method: str, epochs: int, out: Path) -> dict:
    overrides = [
        *size_overrides("fundus2d", "default"),
        f"train.epochs={epochs}",
        "train.progress=false",
        "train.tensorboard=false",
        f"train.val_every={epochs + 1}",
    ]
    cfg = load_config(f"fundus2d_{method}", overrides)
    trainer = Trainer(cfg, out / method)
    trainer.cfg.train.epochs = 1  # the trainer is driven one epoch at a time below
    trainer_steps, pure_steps = [], []
    for e in range(epochs):
        trainer.epoch, trainer.epoch_step = e, 0
        trainer._train_epoch(_NoProgress(), None)
        trainer_steps.append(trainer._epoch_time / trainer.steps_per_epoch)
        seconds, n = pure_epoch(trainer, e)
        pure_steps.append(seconds / n)
    t_med, p_med = statistics.median(trainer_steps[1:]), statistics.median(pure_steps[1:])  # first epoch: warm-up
    return {
        "method": method,
        "model": cfg.model.name,
        "steps_per_epoch": trainer.steps_per_epoch,
        "batch_size": cfg.train.batch_size,
        "trainer_step_s": t_med,
        "pure_step_s": p_med,
        "ratio_pure_over_trainer": p_med / t_med,
    }


class _NoProgress:
    def update(self, *args: object, **kwargs: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="epochs per path (first one is warm-up)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--methods", nargs="+", default=["erm", "fair_dro"])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_engine.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods:
            rows.append(measure(method, max(args.epochs, 2), Path(tmp)))
    print("| method | model | batch | steps/epoch | trainer ms/step | pure loop ms/step | pure / trainer |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['method']} | {r['model']} | {r['batch_size']} | {r['steps_per_epoch']} | "
            f"{1000 * r['trainer_step_s']:.1f} | {1000 * r['pure_step_s']:.1f} | {r['ratio_pure_over_trainer']:.2f} |"
        )
    write_json(
        args.out,
        {
            "benchmark": "engine",
            "epochs": args.epochs,
            "threads": torch.get_num_threads(),
            "machine": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "target_ratio": 0.85,
            "rows": rows,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
