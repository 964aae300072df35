"""Shared scenario of the 2-process DDP test (imported by the test and by the spawned workers).

Not collected by pytest (no ``test_`` prefix); kept importable by name so spawned workers can
unpickle :func:`worker`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from duetfair.objectives import PerCaseDiceCE, build_objective

N, STEPS, FEATURES = 10, 2, 4
RANK_SLICES = (slice(0, 6), slice(6, 10))  # unequal per-rank batches on purpose
CONFIGS = {
    "erm": ("erm", {}),
    "group_dro": ("group_dro", {"step_size": 1.0}),
    "fair_dro_cvar": ("fair_dro", {"within": "cvar", "alpha": 0.5, "across": "uniform"}),
    "fair_dro_kl_dro": ("fair_dro", {"within": "kl", "tau": 0.5, "across": "dro", "step_size": 1.0}),
    "fair_dro_size": ("fair_dro", {"within": "cvar", "alpha": 0.3, "across": "size"}),
    "febs": ("febs", {}),
    "adversarial": ("adversarial", {"feature_dim": FEATURES, "weight": 0.5, "hidden": 8}),
    "divergence": ("divergence", {"alpha": 0.2}),
    "cvar": ("cvar", {"alpha": 0.3}),
    "focal": ("focal", {"gamma": 2.0}),
}
META = pd.DataFrame({"case_id": [f"case{i}" for i in range(N)], "site": ["A", "B"] * (N // 2)})
SUBGROUPS = pd.DataFrame({"itemset": [{"site": "B"}], "divergence": [-0.2], "t": [3.0]})


class TinySegmenter(nn.Module):
    """Two convolutions; ``forward_features`` also returns pooled hidden features ``[B, 4]``."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Conv2d(2, FEATURES, 3, padding=1)
        self.head = nn.Conv2d(FEATURES, 3, 1)

    def forward_features(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.tanh(self.enc(image))
        return self.head(h), h.mean(dim=(2, 3))


class Step(nn.Module):
    """Model + per-case loss + objective, so DDP averages the gradients of every parameter."""

    def __init__(self, objective: nn.Module) -> None:
        super().__init__()
        self.model = TinySegmenter()
        self.objective = objective
        self.loss_fn = PerCaseDiceCE()

    def forward(self, image, label, group, case_ids):
        logits, feats = self.model.forward_features(image)
        extras = {"logits": logits, "target": label, "features": feats, "case_ids": case_ids}
        return self.objective(self.loss_fn(logits, label), group, **{k: extras[k] for k in self.objective.requires})


def batch(step: int):
    """Deterministic global batch of step ``step``: images, labels, groups, case ids."""
    g = torch.Generator().manual_seed(100 + step)
    images = torch.randn(N, 2, 6, 6, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 3, (N, 1, 6, 6), generator=g)
    groups = torch.tensor([[0, 1, 2, -1, 0, 1, 0, 1, 1, -1], [1, 1, 0, 0, 2, -1, 0, 0, 1, 0]][step % 2])
    ids = [f"case{(i + step) % N}" for i in range(N)]
    return images, labels, groups, ids


def run(key: str, part: slice, distributed: bool) -> dict:
    """Train ``STEPS`` SGD steps on the ``part`` of each global batch; record losses, grads, state."""
    name, kwargs = CONFIGS[key]
    torch.manual_seed(0)
    step = Step(build_objective(name, num_groups=3, **kwargs)).double()
    if name == "divergence":
        step.objective.update(SUBGROUPS, META)
    module = DistributedDataParallel(step, broadcast_buffers=False) if distributed else step
    opt = torch.optim.SGD(step.parameters(), lr=0.5)
    out = {"losses": [], "grads": []}
    for s in range(STEPS):
        images, labels, groups, ids = batch(s)
        loss = module(images[part], labels[part], groups[part], ids[part])
        opt.zero_grad()
        loss.backward()
        out["losses"].append(float(loss.detach()))
        out["grads"].append([p.grad.detach().clone() for p in step.parameters()])
        opt.step()
    out["state"] = {k: v.clone() for k, v in step.objective.state_dict().items() if torch.is_tensor(v)}
    out["params"] = [p.detach().clone() for p in step.parameters()]
    return out


def worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    """One DDP rank (gloo): run every configuration on this rank's slice and save the records."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        results = {key: run(key, RANK_SLICES[rank], distributed=True) for key in CONFIGS}
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()
