"""Atomic checkpoints that resume exactly.

A checkpoint holds the model, optimiser, LR scheduler, objective state (GroupDRO weights, divergence
weights, adversarial head...), gradient-scaler state, the RNG states (python, numpy, torch CPU and
CUDA, plus the trainer's own augmentation/shuffle generator), the position (epoch, step inside the
epoch, global step), the best selection score so far and the config hash. It is written to a
temporary file and renamed (:func:`duetfair.io.atomic_path`), so an interrupted save never leaves a
broken ``last.pt``. Loading uses ``torch.load(weights_only=True)``: only tensors and plain
containers are stored (RNG states are converted to tensors / lists).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from duetfair.errors import DuetfairError
from duetfair.io import atomic_path

FORMAT_VERSION = 1


def capture_rng(generator: Optional[torch.Generator] = None) -> dict[str, Any]:
    """RNG states as weights-only-loadable objects (tensors, lists, ints, strings)."""
    np_state: tuple[Any, ...] = tuple(np.random.get_state())
    py_state = random.getstate()
    state: dict[str, Any] = {
        "python": [py_state[0], list(py_state[1]), py_state[2]],
        "numpy": {
            "name": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def restore_rng(state: dict[str, Any], generator: Optional[torch.Generator] = None) -> None:
    """Inverse of :func:`capture_rng`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    npd = state["numpy"]
    keys = npd["keys"].numpy().astype(np.uint32)
    np.random.set_state((npd["name"], keys, npd["pos"], npd["has_gauss"], npd["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` atomically to ``path`` (adds the format version)."""
    payload = dict(state)
    payload["format_version"] = FORMAT_VERSION
    with atomic_path(path) as tmp:
        try:  # through a Python file, so a full disk is an OSError (ENOSPC), not torch's RuntimeError
            with open(tmp, "wb") as f:
                torch.save(payload, f)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(path)) from None
    return Path(path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; clear error for missing or foreign files."""
    p = Path(path)
    if not p.is_file():
        raise DuetfairError(f"checkpoint {p} not found; expected a file written by 'duetfair train'")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt file, pickle with disallowed globals, ...
        raise DuetfairError(f"checkpoint {p}: cannot be loaded safely ({_load_failure(exc)})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise DuetfairError(f"checkpoint {p}: not a duetfair checkpoint (no 'model' entry)")
    return state


def _load_failure(exc: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` failed, in words (PyTorch's own text is long and
    suggests turning the safety off)."""
    text = " ".join(str(exc).split())
    if isinstance(exc, PermissionError):
        return "permission denied"
    if "Unsupported global" in text or "GLOBAL" in text:
        return "it holds pickled objects other than tensors, which are never loaded; expected a duetfair checkpoint"
    return "damaged, cut short or not a PyTorch checkpoint; expected a file written by 'duetfair train'"


def model_state(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The model weights of a checkpoint (stripping a ``module.`` prefix left by DDP)."""
    weights = state["model"]
    return {k.removeprefix("module."): v for k, v in weights.items()}
