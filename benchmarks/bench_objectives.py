"""Cost of every training objective on top of the same segmentation training step, as a ratio to ERM.

One training step = forward of a small MONAI 2D UNet, per-case Dice + CE
(``duetfair.objectives.PerCaseDiceCE``), the objective, backward and an SGD step, on the same batch
(default B=16, 1x96x96, 3 classes, 3 groups with unknowns). Objectives are timed interleaved
(round-robin per repeat) so machine load affects all alike; reported are the median step time,
its ratio to ERM measured in the same run, and the isolated cost of the objective alone
(forward + backward from the per-case losses / logits / features, ERM's own cost subtracted) as a
percentage of the ERM step. Target: <= 3 % overhead for every objective.

The divergence objective's per-epoch work (subgroup mining on the validation per-case table with
``duetfair.audit.discovery.find_divergent_subgroups`` and the weight refresh for the training set)
is timed separately, per epoch: 1000 validation cases x 4 attributes, 5000 training cases.

    python benchmarks/bench_objectives.py --threads 2 --repeats 30

Prints tables and writes ``benchmarks/results/bench_objectives.json``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from monai.networks.nets import UNet
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from duetfair.io import write_json  # noqa: E402
from duetfair.objectives import PerCaseDiceCE, build_objective  # noqa: E402
from duetfair.objectives.divergence import divergence_weights  # noqa: E402

NUM_GROUPS, NUM_CLASSES = 3, 3
OBJECTIVES: dict[str, tuple[str, dict]] = {
    "erm": ("erm", {}),
    "group_dro": ("group_dro", {"step_size": 0.01}),
    "febs": ("febs", {}),
    "adversarial": ("adversarial", {"weight": 0.1}),
    "fair_dro (cvar, uniform)": ("fair_dro", {"within": "cvar", "alpha": 0.5, "across": "uniform"}),
    "fair_dro (kl, dro)": ("fair_dro", {"within": "kl", "tau": 1.0, "across": "dro"}),
    "divergence": ("divergence", {"alpha": 0.2}),
    "cvar": ("cvar", {"alpha": 0.5}),
    "focal": ("focal", {"gamma": 2.0}),
}


class FeatureUNet(nn.Module):
    """MONAI UNet with ``forward_features``: logits and the globally pooled bottleneck features."""

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64, 128)) -> None:
        super().__init__()
        self.net = UNet(2, 1, NUM_CLASSES, channels=channels, strides=(2,) * (len(channels) - 1), num_res_units=1)
        self.feature_dim = channels[-1]
        self._feats: torch.Tensor | None = None
        _bottleneck(self.net).register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self._feats = output.mean(dim=(2, 3))

    def forward_features(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(image)
        assert self._feats is not None
        return logits, self._feats


def _bottleneck(unet: UNet) -> nn.Module:
    """Innermost block of a MONAI UNet (the module between the deepest skip connection)."""
    seq = unet.model
    while isinstance(seq[1].submodule, nn.Sequential):
        seq = seq[1].submodule
    return seq[1].submodule


def make_batch(batch: int, size: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    group = torch.randint(-1, NUM_GROUPS, (batch,), generator=g)
    return {
        "image": torch.randn(batch, 1, size, size, generator=g),
        "label": torch.randint(0, NUM_CLASSES, (batch, 1, size, size), generator=g),
        "group": group,
        "case_ids": [f"case{i:05d}" for i in range(batch)],
    }


def make_objective(name: str, kwargs: dict, feature_dim: int) -> nn.Module:
    if name == "adversarial":
        kwargs = {**kwargs, "feature_dim": feature_dim}
    obj = build_objective(name, num_groups=NUM_GROUPS, **kwargs)
    if name == "divergence":
        meta = pd.DataFrame({"case_id": [f"case{i:05d}" for i in range(64)], "site": ["A", "B"] * 32})
        obj.update(pd.DataFrame({"itemset": [{"site": "B"}], "divergence": [-0.1], "t": [4.0]}), meta)
    return obj


def train_step_fn(model: FeatureUNet, objective: nn.Module, batch: dict) -> Callable[[], None]:
    """One full training step of ``model`` with ``objective`` (own optimiser over both)."""
    loss_fn = PerCaseDiceCE()
    opt = torch.optim.SGD(list(model.parameters()) + list(objective.parameters()), lr=1e-3)

    def step() -> None:
        logits, feats = model.forward_features(batch["image"])
        extras = {"logits": logits, "target": batch["label"], "features": feats, "case_ids": batch["case_ids"]}
        loss = objective(loss_fn(logits, batch["label"]), batch["group"], **{k: extras[k] for k in objective.requires})
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def objective_only_fn(objective: nn.Module, batch: dict, feature_dim: int) -> Callable[[], None]:
    """Forward + backward of the objective alone from fixed leaf inputs (losses, logits, features)."""
    b = batch["image"].shape[0]
    g = torch.Generator().manual_seed(1)
    losses = torch.rand(b, generator=g).requires_grad_(True)
    logits = torch.randn(b, NUM_CLASSES, *batch["image"].shape[2:], generator=g).requires_grad_(True)
    feats = torch.randn(b, feature_dim, generator=g).requires_grad_(True)
    extras = {"logits": logits, "target": batch["label"], "features": feats, "case_ids": batch["case_ids"]}

    def run() -> None:
        objective(losses, batch["group"], **{k: extras[k] for k in objective.requires}).backward()

    return run


def interleaved_medians(fns: dict[str, Callable[[], None]], repeats: int, warmup: int = 3) -> dict[str, float]:
    """Median seconds of each function, timed round-robin ``repeats`` times after ``warmup`` rounds."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(warmup + repeats):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            if r >= warmup:
                times[key].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def bench_steps(batch_size: int, size: int, repeats: int) -> list[dict]:
    batch = make_batch(batch_size, size)
    steps, alone = {}, {}
    for key, (name, kwargs) in OBJECTIVES.items():
        torch.manual_seed(0)
        model = FeatureUNet()
        steps[key] = train_step_fn(model, make_objective(name, kwargs, model.feature_dim), batch)
        alone[key] = objective_only_fn(make_objective(name, kwargs, model.feature_dim), batch, model.feature_dim)
    step_s = interleaved_medians(steps, repeats)
    alone_s = interleaved_medians(alone, repeats * 4)
    base, base_alone = step_s["erm"], alone_s["erm"]
    return [
        {
            "objective": key,
            "step_ms": round(1e3 * step_s[key], 2),
            "ratio_to_erm": round(step_s[key] / base, 3),
            "objective_ms": round(1e3 * alone_s[key], 3),
            "overhead_pct": round(100 * (alone_s[key] - base_alone) / base, 2),
        }
        for key in OBJECTIVES
    ]


def make_validation_table(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` validation cases x 4 discrete attributes, Dice lower for one intersection."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "case_id": [f"val{i:05d}" for i in range(n)],
            "age": rng.choice(["0-40", "41-50", "51-60", "61-70", "71+"], n),
            "menopause": rng.choice(["pre", "post"], n),
            "site": rng.choice(["DUKE", "ISPY1", "ISPY2", "NACT"], n),
            "density": rng.choice(["a", "b", "c", "d"], n),
        }
    )
    hard = (df["age"] == "71+") & (df["site"] == "NACT")
    df["dice"] = np.clip(rng.normal(0.8, 0.08, n) - 0.25 * hard, 0, 1)
    return df


def mine(val: pd.DataFrame, attributes: list[str], min_support: float) -> pd.DataFrame:
    """Subgroups with the audit module's discovery (divexplorer underneath)."""
    from duetfair.audit.discovery import find_divergent_subgroups

    return find_divergent_subgroups(val, "dice", attributes, min_support=min_support, max_length=None)


def bench_divergence_epoch(n_val: int, n_train: int, repeats: int) -> list[dict]:
    attributes = ["age", "menopause", "site", "density"]
    val = make_validation_table(n_val)
    train = make_validation_table(n_train, seed=1).drop(columns="dice")
    train["case_id"] = [f"train{i:05d}" for i in range(n_train)]
    rows = []
    for min_support in (0.01, 0.001):
        mine_t, update_t, used = [], [], 0
        for _ in range(repeats):
            t0 = time.perf_counter()
            subgroups = mine(val, attributes, min_support)
            t1 = time.perf_counter()
            weights = divergence_weights(subgroups, train)
            t2 = time.perf_counter()
            mine_t.append(t1 - t0)
            update_t.append(t2 - t1)
            used = int((weights > 1).sum())
        rows.append(
            {
                "min_support": min_support,
                "val_cases": n_val,
                "attributes": len(attributes),
                "subgroups": len(subgroups),
                "train_cases": n_train,
                "train_upweighted": used,
                "mining_s": round(statistics.median(mine_t), 3),
                "weight_refresh_s": round(statistics.median(update_t), 3),
            }
        )
    return rows


def print_table(rows: list[dict]) -> None:
    cols = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in cols]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("  ".join(str(r[c]).ljust(w) for c, w in zip(cols, widths)))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--repeats", type=int, default=30, help="timed steps per objective (median)")
    parser.add_argument("--batch", type=int, default=16, help="batch size")
    parser.add_argument("--size", type=int, default=96, help="image side in pixels")
    parser.add_argument("--epoch-repeats", type=int, default=3, help="repeats of the per-epoch mining")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_objectives.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    steps = bench_steps(args.batch, args.size, args.repeats)
    print(
        f"training step (MONAI UNet 2D, B={args.batch}, 1x{args.size}x{args.size}, {NUM_CLASSES} classes), "
        f"median over {args.repeats} interleaved steps"
    )
    print_table(steps)
    epoch = bench_divergence_epoch(1000, 5000, args.epoch_repeats)
    print("\ndivergence objective, per-epoch subgroup mining + weight refresh (median seconds)")
    print_table(epoch)
    result = {
        "benchmark": "bench_objectives",
        "threads": args.threads,
        "repeats": args.repeats,
        "batch": args.batch,
        "size": args.size,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "steps": steps,
        "divergence_epoch": epoch,
    }
    write_json(args.out, result)
    print(f"\nwrote {args.out}")
    return result


if __name__ == "__main__":
    main()
