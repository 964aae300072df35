"""Speed of the vectorised dMoE layer against a loop-style reference and a dense MLP.

Forward + backward (training mode: router noise and dropout on) at a 2D token shape
(B=8, N=196, C=256) and a 3D voxel-token shape (B=2, N=24^3, C=48):

(a) ``duetfair.models.moe.DistributionAwareMoE`` (sorted dispatch, grouped expert matmuls);
(b) a loop-style implementation of the public reference, written below: a Python loop over the
    samples for the routers, then per expert a boolean mask, a gather and an ``index_add``;
(c) the FLOP-equivalent dense MLP: one expert applied to ``top_k`` copies of every token.

Reports (a)/(c) (cost of the dispatch beyond the expert FLOPs; target <= 1.2 on 2 CPU cores) and
(a)/(b) (target <= 1), then the full-model training-step time with and without dMoE next to their
FLOP ratio. Prints a table and writes ``benchmarks/results/bench_moe.json``.

    python benchmarks/bench_moe.py --threads 2 --repeats 20
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from duetfair.io import write_json  # noqa: E402
from duetfair.models.moe import DistributionAwareMoE  # noqa: E402

SHAPES = {"2d_tokens": (8, 196, 256), "3d_voxels": (2, 24**3, 48)}
NUM_GROUPS, NUM_EXPERTS, TOP_K = 3, 8, 2


class LoopReferenceMoE(nn.Module):
    """Loop-style dMoE as in the public reference: per-sample routers, per-expert masked gather."""

    def __init__(self, dim: int, num_groups: int, num_experts: int = 8, top_k: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        self.top_k, self.num_experts = top_k, num_experts
        self.gates = nn.ModuleList(nn.Linear(dim, num_experts) for _ in range(num_groups))
        self.noises = nn.ModuleList(nn.Linear(dim, num_experts) for _ in range(num_groups))
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, 4 * dim), nn.ReLU(), nn.Linear(4 * dim, dim), nn.Dropout(dropout))
            for _ in range(num_experts)
        )

    def forward(self, x: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        weights = []
        for b in range(B):  # one router per sample, chosen by its attribute value
            g = int(group[b])
            clean = self.gates[g](x[b])
            noisy = clean + torch.randn_like(clean) * nn.functional.softplus(self.noises[g](x[b]))
            vals, idx = noisy.topk(self.top_k, dim=-1)
            dense = torch.zeros_like(noisy).scatter(-1, idx, torch.softmax(vals, -1))
            weights.append(dense)
        gates = torch.cat(weights)  # [B*N, E]
        flat = x.reshape(B * N, C)
        out = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            mask = gates[:, e] > 0
            if not mask.any():
                continue
            rows = mask.nonzero().squeeze(1)
            out = out.index_add(0, rows, expert(flat[rows]) * gates[rows, e : e + 1])
        return out.view(B, N, C)


class DenseEquivalent(nn.Module):
    """One expert applied to ``top_k`` copies of every token, summed back: the FLOP-equivalent MLP."""

    def __init__(self, dim: int, top_k: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        self.top_k = top_k
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.ReLU(), nn.Linear(4 * dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        rep = x.unsqueeze(2).expand(B, N, self.top_k, C).reshape(-1, C)
        return self.mlp(rep).view(B, N, self.top_k, C).sum(2)


def time_interleaved(fns: dict[str, Callable[[], None]], repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median wall time (ms) of each function, run round-robin so machine load hits all alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def fwd_bwd(module: nn.Module, x: torch.Tensor, group: torch.Tensor, grad: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        module.zero_grad(set_to_none=True)
        x.grad = None
        module(x, group).backward(grad)

    return step


def bench_layers(repeats: int) -> list[dict]:
    rows = []
    for name, (B, N, C) in SHAPES.items():
        torch.manual_seed(0)
        x = torch.randn(B, N, C, requires_grad=True)
        group = torch.arange(B) % NUM_GROUPS
        grad = torch.randn(B, N, C)
        impls = {
            "ours": DistributionAwareMoE(C, NUM_GROUPS, NUM_EXPERTS, TOP_K).train(),
            "loop_reference": LoopReferenceMoE(C, NUM_GROUPS, NUM_EXPERTS, TOP_K).train(),
            "dense_equivalent": DenseEquivalent(C, TOP_K).train(),
        }
        ms = time_interleaved({k: fwd_bwd(m, x, group, grad) for k, m in impls.items()}, repeats)
        rows.append(
            {
                "shape": name,
                "B": B,
                "N": N,
                "C": C,
                **{f"{k}_ms": round(v, 3) for k, v in ms.items()},
                "ours_over_dense": round(ms["ours"] / ms["dense_equivalent"], 3),
                "ours_over_loop": round(ms["ours"] / ms["loop_reference"], 3),
            }
        )
    return rows


def bench_models(repeats: int) -> list[dict]:
    from duetfair.models.registry import build_model, count_params_flops

    setups = [
        (
            "vit_seg tiny 2D",
            "vit_seg",
            "vit_seg_dmoe",
            dict(in_channels=3, num_classes=3, img_size=64, preset="tiny"),
            (4, 3, 64, 64),
        ),
        (
            "resunet3d f=4 3D",
            "resunet3d",
            "resunet3d_dmoe",
            dict(in_channels=1, num_classes=2, img_size=(64, 64, 64), feature_size=4),
            (1, 1, 64, 64, 64),
        ),
    ]
    rows = []
    for label, base, dmoe, kwargs, shape in setups:
        steps, flops = {}, {}
        for variant in (base, dmoe):
            torch.manual_seed(0)
            model = build_model(variant, num_groups=NUM_GROUPS, **kwargs).train()
            opt = torch.optim.SGD(model.parameters(), lr=1e-3)
            image = torch.randn(shape)
            group = torch.arange(shape[0]) % NUM_GROUPS
            target = torch.randint(0, kwargs["num_classes"], (shape[0], *shape[2:]))

            def step(model=model, opt=opt, image=image, group=group, target=target) -> None:
                opt.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(model(image, group), target) + model.aux_loss()
                loss.backward()
                opt.step()

            steps[variant] = step
            flops[variant] = count_params_flops(model, shape, group=group)
        times = time_interleaved(steps, max(3, repeats // 4), warmup=1)
        rows.append(
            {
                "model": label,
                "input": list(shape),
                "step_ms": round(times[base], 2),
                "step_ms_dmoe": round(times[dmoe], 2),
                "time_ratio": round(times[dmoe] / times[base], 3),
                "gflops": round(flops[base]["gflops"], 3),
                "gflops_dmoe": round(flops[dmoe]["gflops"], 3),
                "flop_ratio": round(flops[dmoe]["gflops"] / flops[base]["gflops"], 3),
                "params_m": round(flops[base]["params"] / 1e6, 3),
                "params_m_dmoe": round(flops[dmoe]["params"] / 1e6, 3),
            }
        )
    return rows


def print_table(rows: list[dict], columns: list[str]) -> None:
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print("  ".join(str(r[c]).ljust(w) for c, w in zip(columns, widths)))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--repeats", type=int, default=20, help="timed repeats per measurement (median)")
    parser.add_argument("--skip-models", action="store_true", help="only the layer benchmark")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_moe.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    layers = bench_layers(args.repeats)
    print("dMoE layer, forward+backward, median ms")
    print_table(
        layers,
        [
            "shape",
            "B",
            "N",
            "C",
            "ours_ms",
            "loop_reference_ms",
            "dense_equivalent_ms",
            "ours_over_dense",
            "ours_over_loop",
        ],
    )
    models = [] if args.skip_models else bench_models(args.repeats)
    if models:
        print("\nfull model training step (forward+backward+SGD), median ms; FLOPs of one forward")
        print_table(
            models,
            [
                "model",
                "step_ms",
                "step_ms_dmoe",
                "time_ratio",
                "gflops",
                "gflops_dmoe",
                "flop_ratio",
                "params_m",
                "params_m_dmoe",
            ],
        )
    result = {
        "benchmark": "bench_moe",
        "threads": args.threads,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "layers": layers,
        "models": models,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, result)
    print(f"\nwrote {args.out}")
    return result


if __name__ == "__main__":
    main()
