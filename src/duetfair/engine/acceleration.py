"""What the trainer does to keep an accelerator busy, and what it costs in reproducibility.

* :func:`resolve_determinism`: ``train.deterministic`` ``auto`` (default) is bit-exact on CPU (as
  ``true``) and uses the fast, non-deterministic kernels on CUDA, with one line at start-up that
  says so; ``true`` forces deterministic kernels everywhere, ``false`` never asks for them.
* :func:`seed_everything`: seeds Python, NumPy and torch and applies that choice.
* :func:`device_source`: a cached split moved to the training device once, so that a batch is
  one ``index_select`` on the device instead of a host-to-device copy per step.
* :class:`LossMonitor`: the finite-loss check one step behind the GPU. The loss of step ``t`` is
  copied to pinned host memory with an event right after its forward; the host reads it after
  it has queued step ``t + 1``, so it never waits for the step in flight.
* :func:`compile_model`: ``train.compile`` (``torch.compile`` of the model's forward, in place: the
  state dict, checkpoints and resume are unchanged).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal, Optional

import numpy as np
import torch

from duetfair.engine.batching import BatchSource, CachedCases
from duetfair.models.base import SegmentationModel

DeterministicSetting = bool | Literal["auto"]

#: A cached split goes to the device when it takes at most this share of the free device memory.
DEVICE_CACHE_SHARE = 0.25


@dataclass(frozen=True)
class Determinism:
    """The resolved ``train.deterministic``: whether deterministic kernels are on, and the line the
    trainer prints at start-up (``None`` when there is nothing to say)."""

    enabled: bool
    note: Optional[str] = None


def resolve_determinism(setting: DeterministicSetting, device: torch.device) -> Determinism:
    """``train.deterministic`` on ``device`` (see the module docstring)."""
    if setting is True:
        return Determinism(True)
    if setting is False:
        return Determinism(False)
    if device.type == "cpu":
        return Determinism(True)
    return Determinism(
        False,
        "train.deterministic=auto on cuda: fast GPU kernels (cuDNN autotuning, atomic adds); a run "
        "repeated with the same seed may differ in the last digits. Set train.deterministic=true "
        "for bit-identical GPU runs (measured 2.2-2.9x slower per epoch, docs/training.md)",
    )


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch; deterministic kernels (and no cuDNN autotuning) when asked."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.benchmark = not deterministic and torch.cuda.is_available()


def device_source(source: BatchSource, device: torch.device) -> BatchSource:
    """``source`` with its cached tensors on ``device`` when that is a GPU with room for them (see
    :data:`DEVICE_CACHE_SHARE`); otherwise ``source`` unchanged."""
    if device.type != "cuda" or not isinstance(source, CachedCases):
        return source
    free, _ = torch.cuda.mem_get_info(device)
    if source.nbytes() > DEVICE_CACHE_SHARE * free:
        return source
    return source.to(device)


class LossMonitor:
    """Per-step training losses read one step late, without stalling the device.

    ``push(loss)`` after a step's forward (a detached scalar tensor on the training device) returns
    the value of the step before it (``None`` for the first); ``drain()`` returns the last one.
    On CPU the value is simply read.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._pending: Optional[tuple[torch.Tensor, Any]] = None

    def push(self, loss: torch.Tensor) -> Optional[float]:
        previous = self.drain()
        if self.device.type == "cuda":
            host = torch.empty((), dtype=loss.dtype, pin_memory=True)
            host.copy_(loss.detach(), non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            self._pending = (host, event)
        else:
            self._pending = (loss.detach(), None)
        return previous

    def drain(self) -> Optional[float]:
        """The value of the last pushed loss (waits for it on a GPU); ``None`` when none is pending."""
        if self._pending is None:
            return None
        value, event = self._pending
        self._pending = None
        if event is not None:
            event.synchronize()
        return float(value.item())


def compile_model(model: SegmentationModel, enabled: bool) -> None:
    """``torch.compile`` the model's ``forward_features`` (what ``forward`` calls) in place.

    Parameters, buffers and the state dict stay those of the eager module, so checkpoints written
    with and without compilation are interchangeable. Not a full graph: data-dependent Python in
    a model falls back to eager for that part.
    """
    if not enabled:
        return
    model.forward_features = torch.compile(model.forward_features)  # type: ignore[method-assign]
