"""Worker of the 2-process DDP test (imported by name in the spawned processes; not collected)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from helpers import TINY_MODEL

TINY_DDP = [
    *TINY_MODEL,
    "data.args.n_train=24",
    "data.args.n_val=10",
    "data.args.n_test=4",
    "data.args.image_size=32",
    "train.epochs=1",
    "train.batch_size=4",
]


def worker(rank: int, world: int, port: int, out: str, method: str = "fair_dro") -> None:
    """Train the tiny ``fundus2d_<method>`` config as rank ``rank`` of ``world`` (gloo) and dump its
    final state."""
    os.environ.update(
        {
            "RANK": str(rank),
            "WORLD_SIZE": str(world),
            "LOCAL_RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    torch.set_num_threads(1)
    from duetfair.engine.config import load_config
    from duetfair.engine.distributed import cleanup
    from duetfair.engine.trainer import Trainer

    cfg = load_config(f"fundus2d_{method}", [*TINY_DDP, "objective.first_stage.epochs=1"])
    trainer = Trainer(cfg, Path(out) / "run", resume=False)
    result = trainer.fit()
    torch.save(
        {
            "model": trainer.model.state_dict(),
            "objective": trainer.objective.state_dict(),
            "steps": result.global_step,
            "val_dice": result.history["val_dice"].tolist(),
            "world": trainer.info.world_size,
        },
        Path(out) / f"rank{rank}.pt",
    )
    cleanup()
