"""FairDRO: subgroup-conditioned distributionally robust loss (the DuetFair loss).

Inside each group ``g`` of the (global) batch the per-case losses are aggregated robustly instead of
averaged, so hard cases cannot hide behind a group mean ("intra-group hidden failure"); the group
values are then aggregated across groups. Everything is expressed as detached composite per-case
weights ``w_i = A_{g(i)} * W_i`` (across-group weight x within-group weight), so the loss is one
weighted sum ``sum_i w_i l_i`` whose gradient flows through every selected ``l_i``.

Within a group (``within``):

* ``"cvar"``: CVaR_alpha, the mean of the worst ``k_g = ceil(alpha * n_g)`` losses
  (``W_i = 1 / k_g`` on them; cases tied at the threshold share the remaining mass equally, so the
  result does not depend on case order). ``alpha = 1`` is the group mean.
* ``"kl"``: KL-DRO, ``W_i = softmax(l_i / tau)`` over the group's cases; ``tau -> inf`` is the mean.
* ``"mean"``: the group mean.
* ``"dual_cvar"``: CVaR_alpha in its dual (Rockafellar-Uryasev) form
  ``R_g = eta_g + E_g[(l - eta_g)_+] / alpha`` with one threshold ``eta_g`` per group learned across
  batches. Minimising over ``eta_g`` gives CVaR_alpha, and the mini-batch mean of ``(l - eta_g)_+``
  is unbiased for any batch size, whereas the in-batch ``"cvar"`` of a group with one or two cases
  in the batch is the loss of one case. Cases above ``eta_g`` get the weight ``1 / (alpha n_g)``;
  the others none. ``eta_g`` starts at the first training batch's per-group ``1 - alpha`` quantile
  and takes one stochastic-gradient step on the dual per training batch,
  ``eta_g <- eta_g - eta_step * R_g * (1 - p_g / alpha)`` (``p_g``: share of the group's batch
  cases above ``eta_g``): the step is relative to the group's loss level, so the threshold follows
  the losses down as the model trains (an optimiser step of a fixed size in loss units lags behind
  them, and then no case is above the threshold and the model stops learning).

Across groups (``across``), over the groups present in the batch:

* ``"uniform"``: ``A_g = 1 / G_present`` (with ``within="mean"`` / ``alpha = 1`` this is exactly
  ERM-by-group, the mean of group means);
* ``"size"``: ``A_g = n_g / n_known`` (with ``alpha = 1``: ERM over the known cases);
* ``"dro"``: GroupDRO weights ``q`` updated online from the within-group robust values ``R_g``
  (``q_g <- q_g exp(step_size R_g)``, train mode only), renormalised over present groups.

Unknown attribute (``-1``): counted in ERM terms, excluded from group terms. Unknown cases get the
ERM weight ``1/N`` and the group aggregate gets the share ``n_known / N``. Rationale: an unknown
attribute is not a subgroup (pooling unknowns into a pseudo-group would let the missingness pattern
steer the weights), yet those cases are still training data.

DDP: group counts, CVaR thresholds (from the gathered detached losses), softmax normalisers and
``q`` are global, so every rank computes identical weights and state.

Defaults (``within="kl"``, ``tau=1.0``, ``across="size"``; ``alpha=0.5`` applies to ``"cvar"`` only)
are this toolkit's choice (the DuetFair paper does not publish its hyper-parameters); how they were
chosen and how concentrated the resulting weights are is recorded in docs/objectives.md. For the
paper's stronger worst-case emphasis set ``within="cvar"``, ``alpha`` and ``across="uniform"``.
"""

from __future__ import annotations

import math

import torch

from duetfair.errors import DuetfairError, require
from duetfair.objectives.base import Objective, check_batch, erm_weights, mix_unknown, weighted_loss
from duetfair.objectives.distributed import all_gather_cat, all_reduce_max, group_sums, rank_share

__all__ = ["FairDRO", "fair_dro_weights", "within_group_weights", "across_group_weights"]

WITHIN = ("cvar", "kl", "mean", "dual_cvar")
ACROSS = ("uniform", "size", "dro")


def within_group_weights(
    losses: torch.Tensor,
    group: torch.Tensor,
    num_groups: int,
    *,
    within: str = "kl",
    alpha: float = 0.5,
    tau: float = 1.0,
) -> torch.Tensor:
    """Detached within-group weights ``W [B]``: over each group's global cases they sum to 1.

    Unknown-attribute cases (``group == -1``) get 0.
    """
    _check_options(within, "uniform", alpha, tau)
    require(within != "dual_cvar", "fair_dro: within='dual_cvar' has learned thresholds; use the FairDRO objective")
    l = losses.detach()
    if within == "cvar":
        return _cvar_weights(l, group, num_groups, alpha)
    if within == "kl":
        return _kl_weights(l, group, num_groups, tau)
    _, counts = group_sums(l, group, num_groups)
    return _on_known(1.0 / counts.clamp_min(1), group)


def across_group_weights(counts: torch.Tensor, *, across: str = "size", q: torch.Tensor | None = None) -> torch.Tensor:
    """Across-group weights ``A [G]`` from global group counts ``[G]``; 0 for absent groups, sum 1."""
    present = (counts > 0).to(counts.dtype)
    if across == "uniform":
        a = present
    elif across == "size":
        a = counts
    else:
        if q is None:
            raise DuetfairError("fair_dro: across='dro' needs the GroupDRO weights q")
        a = q.to(counts) * present
    return a / a.sum().clamp_min(torch.finfo(a.dtype).tiny)


def fair_dro_weights(
    losses: torch.Tensor,
    group: torch.Tensor,
    num_groups: int,
    *,
    within: str = "kl",
    alpha: float = 0.5,
    tau: float = 1.0,
    across: str = "size",
    q: torch.Tensor | None = None,
) -> torch.Tensor:
    """Detached composite FairDRO weights ``w [B]`` (sum 1 over the global batch).

    ``w_i = (n_known / N) * A_{g(i)} * W_i`` for known cases and ``1 / N`` for unknown ones, so the
    FairDRO loss is ``sum_i w_i l_i``. ``q [G]`` is required for ``across="dro"``.

    Example:
        >>> losses, group = torch.tensor([1.0, 3.0, 2.0, 2.0]), torch.tensor([0, 0, 1, 1])
        >>> w = fair_dro_weights(losses, group, 2, within="cvar", alpha=0.5)
        >>> w  # the worse half of each group, groups weighted by size
        tensor([0.0000, 0.5000, 0.2500, 0.2500])
        >>> (w * losses).sum()
        tensor(2.5000)
    """
    check_batch(losses, group, num_groups)
    _check_options(within, across, alpha, tau)
    within_w = within_group_weights(losses, group, num_groups, within=within, alpha=alpha, tau=tau)
    _, counts = group_sums(losses, group, num_groups)
    across_w = across_group_weights(counts, across=across, q=q)
    return mix_unknown(_on_known(across_w, group) * within_w, group)


class FairDRO(Objective):
    """Subgroup-conditioned DRO loss (DuetFair). See the module docstring for the definition.

    Args:
        num_groups: number of groups ``G``.
        within: ``"kl"`` (default) | ``"cvar"`` | ``"dual_cvar"`` | ``"mean"`` within-group aggregate.
        alpha: CVaR level in ``(0, 1]`` (fraction of worst cases per group; ``"cvar"`` and
            ``"dual_cvar"``).
        tau: KL-DRO temperature ``> 0`` (``within="kl"`` only).
        across: ``"size"`` (default) | ``"uniform"`` | ``"dro"`` across-group aggregate.
        step_size: exponentiated-gradient step of ``q`` for ``across="dro"``.
        eta_step: relative step of the thresholds ``eta_g`` (``within="dual_cvar"`` only).

    Example:
        >>> objective = FairDRO(num_groups=2)  # within="kl", tau=1.0, across="size"
        >>> worst_half = FairDRO(num_groups=2, within="cvar", alpha=0.5, across="uniform")
        >>> losses, group = torch.tensor([1.0, 3.0, 2.0, 2.0]), torch.tensor([0, 0, 1, 1])
        >>> worst_half(losses, group)
        tensor(2.5000)
    """

    # buffers (register_buffer), typed for mypy
    q: torch.Tensor
    group_value: torch.Tensor
    ess_sum: torch.Tensor
    ess_batches: torch.Tensor
    eta: torch.Tensor
    eta_ready: torch.Tensor

    def __init__(
        self,
        num_groups: int,
        *,
        within: str = "kl",
        alpha: float = 0.5,
        tau: float = 1.0,
        across: str = "size",
        step_size: float = 0.01,
        eta_step: float = 0.05,
    ) -> None:
        super().__init__(num_groups)
        _check_options(within, across, alpha, tau)
        require(step_size >= 0, f"fair_dro: step_size must be >= 0, got {step_size}")
        require(0 < eta_step < 1, f"fair_dro: eta_step must be in (0, 1), got {eta_step}")
        self.eta_step = float(eta_step)
        self.within, self.across = within, across
        self.alpha, self.tau, self.step_size = float(alpha), float(tau), float(step_size)
        self.register_buffer("q", torch.full((num_groups,), 1.0 / num_groups))
        self.register_buffer("group_value", torch.zeros(num_groups))
        self.register_buffer("ess_sum", torch.zeros(num_groups, dtype=torch.float64))
        self.register_buffer("ess_batches", torch.zeros(num_groups, dtype=torch.float64))
        if within == "dual_cvar":
            self.register_buffer("eta", torch.zeros(num_groups))
            self.register_buffer("eta_ready", torch.zeros((), dtype=torch.bool))
        self._eta_checked = False

    def compute(self, losses: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        """FairDRO loss of ``losses [B]`` (updates ``q`` in train mode when ``across="dro"``)."""
        if self.within == "dual_cvar":
            return self._dual_cvar(losses, group)
        within_w = within_group_weights(
            losses, group, self.num_groups, within=self.within, alpha=self.alpha, tau=self.tau
        )
        values, counts = group_sums(within_w * losses.detach(), group, self.num_groups)
        self.group_value.copy_(values.to(self.group_value))
        if self.training:
            self._track_concentration(within_w, group, counts)
        if self.across == "dro" and self.training:
            q = self.q * torch.exp(self.step_size * values.to(self.q))
            self.q.copy_(q / q.sum())
        across_w = across_group_weights(counts, across=self.across, q=self.q)
        weights = mix_unknown(_on_known(across_w, group) * within_w, group)
        return weighted_loss(losses, weights)

    def _dual_cvar(self, losses: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        """``(n_known / N) sum_g A_g R_g + (1 / N) sum_unknown l_i`` with the dual-form ``R_g`` at the
        current thresholds; gradients reach the cases above ``eta_g``. Train mode: then one step of
        every present group's ``eta_g``."""
        if self.training and not self._eta_checked:  # one host read per run, not one per step
            if not bool(self.eta_ready):
                self._init_eta(losses, group)
            self._eta_checked = True
        known = group >= 0
        idx = group.clamp_min(0)
        eta = self.eta.to(losses.dtype, copy=True)  # the step below must not move this batch's thresholds
        excess = torch.where(known, (losses - eta[idx]).clamp_min(0), torch.zeros_like(losses))
        sums, counts = group_sums(excess, group, self.num_groups)
        values = torch.where(counts > 0, eta + sums / (self.alpha * counts.clamp_min(1)), torch.zeros_like(eta))
        self.group_value.copy_(values.to(self.group_value))
        above = torch.where(known & (excess > 0), 1.0 / (self.alpha * counts[idx].clamp_min(1)), 0.0)
        if self.training:
            self._track_concentration(above, group, counts)
            n_above, _ = group_sums((excess > 0).to(losses.dtype), group, self.num_groups)
            share = n_above / counts.clamp_min(1)
            step = self.eta_step * values * (1.0 - share / self.alpha)
            self.eta.copy_(torch.where(counts > 0, eta - step, eta).to(self.eta))
        if self.across == "dro" and self.training:
            q = self.q * torch.exp(self.step_size * values.to(self.q))
            self.q.copy_(q / q.sum())
        across_w = across_group_weights(counts, across=self.across, q=self.q)
        per_case = mix_unknown(_on_known(across_w, group) * above, group)
        weighted = torch.where(known, per_case * excess, per_case * losses).sum()
        constant = counts.sum() * erm_weights(losses)[0] * (across_w * eta).sum()  # (n_known / N) sum A_g eta_g
        return rank_share(weighted) + constant

    @torch.no_grad()
    def _init_eta(self, losses: torch.Tensor, group: torch.Tensor) -> None:
        """``eta_g`` <- the ``1 - alpha`` quantile of group ``g``'s losses in the first training batch
        (all ranks' losses; the batch's overall quantile for groups absent from it)."""
        all_l, _ = all_gather_cat(losses.detach().float())
        all_g, _ = all_gather_cat(group)
        q = 1.0 - self.alpha
        eta = torch.full_like(self.eta, float(torch.quantile(all_l, q)))
        for g in range(self.num_groups):
            mine = all_l[all_g == g]
            if mine.numel():
                eta[g] = torch.quantile(mine, q)
        self.eta.copy_(eta)
        self.eta_ready.fill_(True)

    def _track_concentration(self, within_w: torch.Tensor, group: torch.Tensor, counts: torch.Tensor) -> None:
        """Accumulate each group's relative effective sample size of its within-group weights,
        ``ESS_g / n_g = (sum w)^2 / (n_g sum w^2)`` over the group's cases of a (global) batch:
        1 = uniform weights (plain group mean), ``1 / n_g`` = all weight on one case."""
        known = group >= 0
        w = torch.where(known, within_w.detach(), torch.zeros_like(within_w)).double()
        sums, _ = group_sums(w, group, self.num_groups)
        squares, _ = group_sums(w * w, group, self.num_groups)
        present = counts > 0
        ess = sums.double() ** 2 / (counts.double().clamp_min(1) * squares.double().clamp_min(1e-300))
        self.ess_sum += torch.where(present, ess, torch.zeros_like(ess)).to(self.ess_sum)
        self.ess_batches += present.to(self.ess_batches)

    def log_values(self) -> dict[str, float]:
        """Robust value ``R_g`` of each group in the last batch, ``q_g`` for ``across="dro"``, and the
        mean relative effective sample size ``ess_g`` of the within-group weights over the training
        batches since the last call (1 = uniform; a small value = the weight sits on few hard cases)."""
        out = {f"group_value_{g}": float(v) for g, v in enumerate(self.group_value)}
        if self.within == "dual_cvar":
            out.update({f"eta_{g}": float(v) for g, v in enumerate(self.eta)})
        if self.across == "dro":
            out.update({f"q_{g}": float(v) for g, v in enumerate(self.q)})
        mean = self.ess_sum / self.ess_batches.clamp_min(1)
        out.update(
            {f"ess_{g}": float(v) if n > 0 else float("nan") for g, (v, n) in enumerate(zip(mean, self.ess_batches))}
        )
        self.ess_sum.zero_()
        self.ess_batches.zero_()
        return out


def _check_options(within: str, across: str, alpha: float, tau: float) -> None:
    require(within in WITHIN, f"fair_dro: within must be one of {WITHIN}, got {within!r}")
    require(across in ACROSS, f"fair_dro: across must be one of {ACROSS}, got {across!r}")
    require(0 < alpha <= 1, f"fair_dro: alpha must be in (0, 1], got {alpha}")
    require(tau > 0, f"fair_dro: tau must be > 0, got {tau}")


def _on_known(per_group: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """Per-case value ``per_group[group]`` with 0 at unknown (-1) cases. Shape ``[B]``."""
    vals = per_group[group.clamp_min(0)]
    return torch.where(group >= 0, vals, torch.zeros_like(vals))


def _cvar_weights(losses: torch.Tensor, group: torch.Tensor, num_groups: int, alpha: float) -> torch.Tensor:
    """CVaR_alpha weights within each group, from the losses of all ranks (ties share mass)."""
    all_l, offset = all_gather_cat(losses)
    all_g, _ = all_gather_cat(group)
    known = all_g >= 0
    weights = torch.zeros_like(all_l)
    if bool(known.any()):
        weights[known] = _cvar_weights_local(all_l[known], all_g[known], num_groups, alpha)
    return weights[offset : offset + losses.numel()]


def _cvar_weights_local(losses: torch.Tensor, group: torch.Tensor, num_groups: int, alpha: float) -> torch.Tensor:
    counts = torch.bincount(group, minlength=num_groups)
    k = torch.ceil(alpha * counts.double() - 1e-9).clamp_min(1).long()
    # sort by group, then loss descending: position of each case inside its group's ranking
    order = torch.argsort(losses, descending=True, stable=True)
    order = order[torch.argsort(group[order], stable=True)]
    starts = torch.cumsum(counts, 0) - counts
    threshold = torch.zeros(num_groups, dtype=losses.dtype, device=losses.device)
    present = counts > 0
    threshold[present] = losses[order[(starts + k - 1)[present]]]
    thr = threshold[group]
    greater = losses > thr
    equal = losses == thr
    n_greater = torch.bincount(group[greater], minlength=num_groups).to(losses.dtype)
    n_equal = torch.bincount(group[equal], minlength=num_groups).to(losses.dtype)
    kf = k.to(losses.dtype)
    tie_share = (kf - n_greater) / (n_equal.clamp_min(1) * kf)
    w = torch.where(greater, 1.0 / kf[group], torch.zeros_like(losses))
    return torch.where(equal, tie_share[group], w)


def _kl_weights(losses: torch.Tensor, group: torch.Tensor, num_groups: int, tau: float) -> torch.Tensor:
    """``softmax(l / tau)`` within each group (global max and normaliser)."""
    z = losses / tau
    known = group >= 0
    idx = group.clamp_min(0)
    local_max = torch.full((num_groups,), -math.inf, dtype=z.dtype, device=z.device)
    local_max = local_max.scatter_reduce(0, idx[known], z[known], reduce="amax")
    gmax = all_reduce_max(local_max)
    gmax = torch.where(torch.isfinite(gmax), gmax, torch.zeros_like(gmax))
    e = torch.where(known, torch.exp(z - gmax[idx]), torch.zeros_like(z))
    norm, _ = group_sums(e, group, num_groups)
    return torch.where(known, e / norm[idx].clamp_min(torch.finfo(z.dtype).tiny), torch.zeros_like(z))
