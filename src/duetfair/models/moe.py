"""Mixture-of-experts layers: plain MoE and distribution-aware MoE (dMoE).

The dMoE layer holds ``E`` two-layer MLP experts shared by all subgroups and one noisy top-k router
per attribute value. A sample is routed by the router of its own attribute value; every token of
the sample (a ViT patch or a voxel) is sent to its ``top_k`` experts and the gated expert outputs
are summed. The caller adds the output as a residual: ``h = h + dmoe(h, group)``.

Dispatch is vectorised: the ``B * N * top_k`` token-expert assignments are sorted by expert once
(``argsort``), the sorted tokens go through the experts as one grouped GEMM (or padded blocks and
one ``bmm`` per layer, or one matmul per expert on CPU; see ``dispatch``), and the outputs are
brought back with the inverse permutation and gated. There is no Python loop over samples or groups,
and the ``grouped_mm`` and ``blocked`` paths (chosen automatically on GPU and under
``torch.compile``) have only static shapes (no ``.item()``, ``.any()`` or ``nonzero()``), so it does
not synchronise a GPU and compiles under ``torch.compile`` without graph breaks.

Differences from the public reference, all named parameters:

* ``eval_noise=False``: router noise only in training mode (the reference keeps it at evaluation,
  which makes predictions random; ``eval_noise=True`` reproduces that).
* ``load_balance_weight=0.0``: optional Switch-style load-balancing loss (the reference has none),
  exposed through :meth:`DistributionAwareMoE.aux_loss`.
* Unknown group (code ``-1`` or ``group=None``): the sample uses the *mean router* of the
  attribute, i.e. the router whose weights are the mean of that attribute's routers. Its clean
  logits are exactly the mean of the clean logits of all group routers (the router is linear).
* Several attributes (``num_groups=[G1, G2, ...]``): ``multi_attribute="sum"`` (default) keeps one
  router set per attribute and sums their logits (weights are summed before the matmul, so the
  cost does not grow with the number of attributes; an unknown attribute contributes its mean
  router while known ones still count); ``multi_attribute="intersection"`` keeps one router per
  combination of values (``prod(G)`` routers; any unknown code -> mean of all routers).
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from duetfair.errors import DuetfairError, require

__all__ = ["DistributionAwareMoE", "MoE", "MoEExperts", "GroupRouter", "compute_dtype", "normalize_num_groups"]

Dispatch = Literal["auto", "grouped_mm", "blocked", "split"]

#: Extra columns of the ``grouped_mm`` rows: a column of ones for the folded biases, then zeros
#: (8 bf16 / fp16 values = 16 bytes, the alignment the grouped GEMM kernels need).
FOLD = 8
MultiAttribute = Literal["sum", "intersection"]


def normalize_num_groups(num_groups: int | Sequence[int]) -> list[int]:
    """Return ``num_groups`` as a list of per-attribute cardinalities (each >= 1)."""
    cards = [int(num_groups)] if isinstance(num_groups, int) else [int(g) for g in num_groups]
    require(len(cards) >= 1, "num_groups: expected an int or a non-empty list of ints")
    require(all(g >= 1 for g in cards), f"num_groups: expected cardinalities >= 1, got {cards}")
    return cards


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype the expert matmuls run in: the autocast dtype of ``x``'s device when autocast is
    on there (the expert weights stay fp32 master weights), else ``x.dtype``."""
    device = x.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return x.dtype


def _uniform_(tensor: torch.Tensor, fan_in: int) -> torch.Tensor:
    """``nn.Linear`` default initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)
    return nn.init.uniform_(tensor, -bound, bound)


class _Permute(torch.autograd.Function):
    """Row permutation ``x[perm]`` whose backward is the inverse permutation (no scatter-add)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, perm: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(inv)
        return x.index_select(0, perm)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (inv,) = ctx.saved_tensors
        return grad.index_select(0, inv), None, None


class _Dispatch(torch.autograd.Function):
    """Copy token rows to their sorted assignment slots: ``x[order // k]`` -> ``[T * k, C]``.

    Backward: bring the slot gradients back in assignment order with the inverse permutation and
    sum the ``k`` copies of each token (a gather and a reduction, no atomic scatter-add).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, src: torch.Tensor, inv: torch.Tensor, k: int) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(inv)
        ctx.k = k
        return x.index_select(0, src)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (inv,) = ctx.saved_tensors
        g = grad.index_select(0, inv)
        return g.view(-1, ctx.k, g.shape[-1]).sum(1), None, None, None


class MoEExperts(nn.Module):
    """``E`` experts ``Linear(C, H) -> ReLU -> Linear(H, C) -> Dropout`` with stacked weights.

    Weights: ``w1 [E, C, H]``, ``b1 [E, H]``, ``w2 [E, H, C]``, ``b2 [E, C]`` (``H = hidden_mult * C``),
    initialised like ``nn.Linear``.
    """

    def __init__(self, dim: int, num_experts: int, hidden_mult: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        require(
            dim >= 1 and num_experts >= 1 and hidden_mult >= 1, "MoEExperts: dim, num_experts, hidden_mult must be >= 1"
        )
        require(0.0 <= dropout < 1.0, f"MoEExperts: dropout must be in [0, 1), got {dropout}")
        hidden = hidden_mult * dim
        self.dim, self.hidden, self.num_experts, self.dropout = dim, hidden, num_experts, dropout
        self.w1 = nn.Parameter(_uniform_(torch.empty(num_experts, dim, hidden), dim))
        self.b1 = nn.Parameter(_uniform_(torch.empty(num_experts, hidden), dim))
        self.w2 = nn.Parameter(_uniform_(torch.empty(num_experts, hidden, dim), hidden))
        self.b2 = nn.Parameter(_uniform_(torch.empty(num_experts, dim), hidden))

    def expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        """Apply expert ``e`` to rows ``x [M, C]`` -> ``[M, C]`` (no dropout; for references/tests)."""
        return torch.addmm(self.b2[e], torch.relu(torch.addmm(self.b1[e], x, self.w1[e])), self.w2[e])

    def grouped_mm_ok(self, x: torch.Tensor, dtype: torch.dtype | None = None) -> bool:
        """Whether ``torch.nn.functional.grouped_mm`` can run on ``x`` computed in ``dtype``
        (default ``x.dtype``; under autocast pass :func:`compute_dtype`).

        Needs 16-byte aligned rows, and bfloat16 except in eager mode on CPU (the CUDA kernels and
        the compiler's shape function accept only bfloat16).
        """
        dtype = x.dtype if dtype is None else dtype
        size = torch.empty((), dtype=dtype).element_size()
        aligned = (self.dim * size) % 16 == 0 and (self.hidden * size) % 16 == 0
        eager_cpu = x.device.type == "cpu" and not torch.compiler.is_compiling()
        return hasattr(F, "grouped_mm") and aligned and (dtype == torch.bfloat16 or eager_cpu)

    @staticmethod
    def fold_tokens(x: torch.Tensor) -> torch.Tensor:
        """Rows ``x [T, C]`` -> ``[T, C + FOLD]``: a column of ones (it multiplies the folded
        biases, see :meth:`folded_weights`), then zeros that keep the rows 16-byte aligned."""
        pad = x.new_zeros(x.shape[0], FOLD)
        pad[:, 0] = 1
        return torch.cat([x, pad], dim=1)

    def folded_weights(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Expert weights with their biases folded in, in ``dtype`` (a cast copy under autocast,
        as autocast makes for ``nn.Linear``; the master weights keep their dtype).

        ``w1 [E, C + FOLD, H + FOLD]``: row ``C`` holds ``b1`` and a 1 in column ``H``, so the
        hidden rows get a constant-1 column that ReLU keeps; ``w2 [E, H + FOLD, C]``: row ``H``
        holds ``b2``. Both biases are then part of the grouped GEMMs, forward and backward: no
        per-row bias gather and no atomic scatter-add into ``E`` bias rows in the backward (on a
        GPU that scatter cost as much as a grouped GEMM).
        """
        E, C, H = self.num_experts, self.dim, self.hidden
        w1, b1, w2, b2 = (p.to(dtype) for p in (self.w1, self.b1, self.w2, self.b2))
        one = w1.new_zeros(E, C + FOLD, FOLD)
        one[:, C, 0] = 1
        rows1 = torch.cat([w1, b1.unsqueeze(1), w1.new_zeros(E, FOLD - 1, H)], dim=1)
        rows2 = torch.cat([w2, b2.unsqueeze(1), w2.new_zeros(E, FOLD - 1, C)], dim=1)
        return torch.cat([rows1, one], dim=2), rows2

    def _blocked(self, xs: torch.Tensor, expert_ids: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Static-shape grouped matmul for any dtype: per-expert segments padded to blocks + ``bmm``.

        Each expert's rows are padded to a multiple of ``block`` rows; the ``nb`` blocks (an upper
        bound that depends only on shapes) are multiplied by their expert's weights with one
        ``baddbmm`` per layer. Padding rows are zeros and are dropped afterwards.
        """
        M, C = xs.shape
        E = self.num_experts
        block = int(min(256, max(16, 2 ** math.ceil(math.log2(max(1, M // (4 * E)))))))
        nb = (M + E * (block - 1)) // block + 1
        ends = counts.cumsum(0)
        padded = (counts + block - 1) // block * block
        padded_ends = padded.cumsum(0)
        rank = torch.arange(M, device=xs.device) - (ends - counts).index_select(0, expert_ids)
        dest = (padded_ends - padded).index_select(0, expert_ids) + rank  # [M] row in the padded buffer
        xp = xs.new_zeros(nb * block, C).index_copy(0, dest, xs).view(nb, block, C)
        starts = torch.arange(nb, device=xs.device) * block
        block_expert = torch.searchsorted(padded_ends, starts, right=True).clamp_max(E - 1)  # [nb]
        h = torch.baddbmm(self.b1.index_select(0, block_expert).unsqueeze(1), xp, self.w1.index_select(0, block_expert))
        y = torch.baddbmm(
            self.b2.index_select(0, block_expert).unsqueeze(1), torch.relu(h), self.w2.index_select(0, block_expert)
        )
        return y.view(nb * block, C).index_select(0, dest)

    def forward(self, xs: torch.Tensor, expert_ids: torch.Tensor, counts: torch.Tensor, dispatch: str) -> torch.Tensor:
        """Run sorted assignments through their experts.

        Args:
            xs: ``[M, C]`` token rows sorted by expert (expert 0 first); for ``grouped_mm``
                ``[M, C + FOLD]`` rows of :meth:`fold_tokens` in the compute dtype (under
                autocast: the autocast dtype, see :func:`compute_dtype`).
            expert_ids: ``[M]`` expert of each row (non-decreasing).
            counts: ``[E]`` number of rows per expert.
            dispatch: ``"grouped_mm"`` (one grouped GEMM), ``"blocked"`` (padded blocks + bmm;
                both static shapes, sync-free) or ``"split"`` (one matmul per expert; reads
                ``counts`` on the host).

        Returns:
            ``[M, C]`` expert outputs (dropout applied in training mode).
        """
        if dispatch == "grouped_mm":
            w1, w2 = self.folded_weights(xs.dtype)
            offs = counts.cumsum(0).to(torch.int32)
            y = F.grouped_mm(torch.relu(F.grouped_mm(xs, w1, offs=offs)), w2, offs=offs)
        elif dispatch == "blocked":
            y = self._blocked(xs, expert_ids, counts)
        else:
            # unbind once: indexing w[e] per expert would allocate a zero [E, ...] gradient per select
            params = zip(self.w1.unbind(0), self.b1.unbind(0), self.w2.unbind(0), self.b2.unbind(0))
            chunks = xs.split(counts.tolist())
            y = torch.cat(
                [torch.addmm(b2, torch.relu(torch.addmm(b1, c, w1)), w2) for (w1, b1, w2, b2), c in zip(params, chunks)]
            )
        return F.dropout(y, self.dropout, self.training)


class GroupRouter(nn.Module):
    """Noisy top-k routers, one per attribute value (see the module docstring for the fallbacks).

    Parameters: ``weight [R, C, 2E]`` and ``bias [R, 2E]`` (clean logits in the first ``E`` columns,
    pre-softplus noise scale in the last ``E``), ``R`` = total number of routers.
    """

    def __init__(
        self, dim: int, num_groups: int | Sequence[int], num_experts: int, multi_attribute: MultiAttribute = "sum"
    ) -> None:
        super().__init__()
        require(
            multi_attribute in ("sum", "intersection"),
            f"multi_attribute: expected 'sum' or 'intersection', got {multi_attribute!r}",
        )
        self.cards = normalize_num_groups(num_groups)
        self.num_experts = num_experts
        self.multi_attribute = multi_attribute
        # attribute-blind: a single router set of a single value ignores the group entirely
        self.blind = self.cards == [1]
        sizes = [math.prod(self.cards)] if multi_attribute == "intersection" else self.cards
        self.sizes = sizes
        total = sum(sizes)
        self.weight = nn.Parameter(_uniform_(torch.empty(total, dim, 2 * num_experts), dim))
        self.bias = nn.Parameter(_uniform_(torch.empty(total, 2 * num_experts), dim))
        self._starts = [sum(sizes[:a]) for a in range(len(sizes))]
        self.register_buffer("starts", torch.tensor(self._starts, dtype=torch.long), persistent=False)
        radix = [math.prod(self.cards[a + 1 :]) for a in range(len(self.cards))]
        self.register_buffer("radix", torch.tensor(radix, dtype=torch.long), persistent=False)
        self.register_buffer("cards_t", torch.tensor(self.cards, dtype=torch.long), persistent=False)

    @property
    def num_attributes(self) -> int:
        return len(self.cards)

    def _codes(self, group: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
        """Validate and return codes ``[B, A]`` (``-1`` unknown)."""
        A = self.num_attributes
        if group is None or self.blind:
            return torch.full((batch, A), -1 if not self.blind else 0, dtype=torch.long, device=device)
        g = torch.as_tensor(group, device=device).long()
        if g.dim() == 1:
            g = g.unsqueeze(1)
        if g.dim() != 2 or g.shape[0] != batch or g.shape[1] != A:
            raise DuetfairError(
                f"group: expected shape [{batch}] or [{batch}, {A}] (one code per attribute), got {list(g.shape)}"
            )
        if g.device.type == "cpu" and not torch.compiler.is_compiling():
            bad = (g >= self.cards_t) | (g < -1)
            if bool(bad.any()):
                raise DuetfairError(
                    "group: codes must be -1 (unknown) or in [0, cardinality) for "
                    f"cardinalities {self.cards}, got {g[bad.any(1)][0].tolist()}"
                )
        return g

    def effective_params(
        self, group: torch.Tensor | None, batch: int, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample router parameters ``(W [B, C, 2E], b [B, 2E])`` after fallback and summing."""
        g = self._codes(group, batch, device)
        means_w, means_b = [], []
        for start, size in zip(self._starts, self.sizes):
            means_w.append(self.weight[start : start + size].mean(0))
            means_b.append(self.bias[start : start + size].mean(0))
        table_w = torch.cat([self.weight, torch.stack(means_w)])  # [R + S, C, 2E]
        table_b = torch.cat([self.bias, torch.stack(means_b)])
        total = self.weight.shape[0]
        if self.multi_attribute == "intersection":
            unknown = (g < 0).any(1)
            idx = torch.where(
                unknown, torch.full_like(unknown, total, dtype=torch.long), (g.clamp_min(0) * self.radix).sum(1)
            )
            return table_w.index_select(0, idx), table_b.index_select(0, idx)
        mean_idx = total + torch.arange(self.num_attributes, device=device)
        idx = torch.where(g < 0, mean_idx.expand_as(g), g + self.starts)  # [B, A]
        w = table_w.index_select(0, idx.reshape(-1)).view(batch, -1, *table_w.shape[1:]).sum(1)
        b = table_b.index_select(0, idx.reshape(-1)).view(batch, -1, table_b.shape[-1]).sum(1)
        return w, b

    def forward(self, x: torch.Tensor, group: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Router logits for tokens ``x [B, N, C]``: ``(clean [B, N, E], noise_scale [B, N, E])``,
        float32 for float32 / bfloat16 / float16 tokens.

        The router always runs in float32, under autocast too (as Switch Transformers do): its
        matmul is ``2E / (2 * k * H)`` of the expert FLOPs, and a bfloat16 router would change the
        top-k choice of near-tied tokens against the float32 model.
        """
        w, b = self.effective_params(group, x.shape[0], x.device)
        dtype = torch.promote_types(x.dtype, torch.float32)
        with torch.autocast(x.device.type, enabled=False):
            logits = torch.baddbmm(b.unsqueeze(1).to(dtype), x.to(dtype), w.to(dtype))
        clean, raw_noise = logits.split(self.num_experts, dim=-1)
        return clean, F.softplus(raw_noise)


class DistributionAwareMoE(nn.Module):
    """Distribution-aware mixture of experts: ``[B, N, C]`` tokens + group codes -> ``[B, N, C]``.

    Args:
        dim: token width ``C``.
        num_groups: cardinality of the routing attribute, or a list for several attributes.
            ``1`` is the attribute-blind MoE ablation (the group is ignored).
        num_experts: ``E`` shared experts (paper: 8).
        top_k: experts per token (paper: 2).
        hidden_mult: expert hidden width ``H = hidden_mult * C`` (paper: 4).
        dropout: dropout after each expert (paper: 0.1).
        noisy_gating: add ``N(0, 1) * softplus(W_n x + b_n)`` to the router logits (paper: on).
        eval_noise: keep the router noise in eval mode (the reference does; default off so that
            predictions are deterministic).
        load_balance_weight: weight of the Switch-style load-balancing loss
            ``E * sum_e f_e P_e`` (``f_e`` fraction of assignments to expert ``e``, ``P_e`` mean
            router probability); ``0`` (default, as in the reference) disables it.
        multi_attribute: ``"sum"`` or ``"intersection"`` routers for several attributes.
        dispatch: ``"grouped_mm"`` (one grouped GEMM; static shapes, no host sync; bfloat16
            only on GPU and under ``torch.compile``), ``"blocked"`` (expert segments padded to
            blocks and one ``bmm`` per layer; static shapes, no host sync, any dtype), ``"split"``
            (one matmul per expert, sizes read on the host; fastest on CPU) or ``"auto"``
            (eager CPU: ``split``; GPU or ``torch.compile``: ``grouped_mm`` for bfloat16,
            ``blocked`` otherwise).

    ``forward(x, group)``: ``x [B, N, C]``, ``group`` LongTensor ``[B]`` or ``[B, A]`` (``-1``
    unknown) or ``None`` (all unknown). Returns the MoE output ``[B, N, C]`` without the residual.
    """

    def __init__(
        self,
        dim: int,
        num_groups: int | Sequence[int] = 1,
        num_experts: int = 8,
        top_k: int = 2,
        hidden_mult: int = 4,
        dropout: float = 0.1,
        noisy_gating: bool = True,
        *,
        eval_noise: bool = False,
        load_balance_weight: float = 0.0,
        multi_attribute: MultiAttribute = "sum",
        dispatch: Dispatch = "auto",
    ) -> None:
        super().__init__()
        require(dim >= 1, f"dim: expected >= 1, got {dim}")
        require(num_experts >= 1, f"num_experts: expected >= 1, got {num_experts}")
        require(1 <= top_k <= num_experts, f"top_k: expected 1 <= top_k <= num_experts={num_experts}, got {top_k}")
        require(load_balance_weight >= 0.0, f"load_balance_weight: expected >= 0, got {load_balance_weight}")
        require(
            dispatch in ("auto", "grouped_mm", "blocked", "split"),
            f"dispatch: expected 'auto', 'grouped_mm', 'blocked' or 'split', got {dispatch!r}",
        )
        self.dim, self.num_experts, self.top_k = dim, num_experts, top_k
        self.noisy_gating, self.eval_noise = noisy_gating, eval_noise
        self.load_balance_weight = float(load_balance_weight)
        self.dispatch = dispatch
        self.router = GroupRouter(dim, num_groups, num_experts, multi_attribute)
        self.experts = MoEExperts(dim, num_experts, hidden_mult, dropout)
        self._aux: torch.Tensor | None = None

    @property
    def num_groups(self) -> list[int]:
        return list(self.router.cards)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, num_groups={self.router.cards}, num_experts={self.num_experts}, top_k={self.top_k}, "
            f"noisy_gating={self.noisy_gating}, eval_noise={self.eval_noise}, "
            f"multi_attribute={self.router.multi_attribute!r}, "
            f"dispatch={self.dispatch!r}"
        )

    def _resolve_dispatch(self, x: torch.Tensor, dtype: torch.dtype) -> str:
        """The dispatch path for tokens ``x`` computed in ``dtype`` (see ``dispatch``)."""
        if self.dispatch in ("split", "blocked"):
            return self.dispatch
        can_gmm = self.experts.grouped_mm_ok(x, dtype)
        if self.dispatch == "grouped_mm":
            require(
                can_gmm,
                f"dispatch='grouped_mm' needs rows aligned to 16 bytes and bfloat16 outside eager CPU "
                f"(dim={self.dim}, dtype={dtype}, device={x.device.type}); use 'blocked'",
            )
            return "grouped_mm"
        if x.device.type == "cpu" and not torch.compiler.is_compiling():
            return "split"
        return "grouped_mm" if can_gmm else "blocked"

    def route(self, x: torch.Tensor, group: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Noisy top-k routing of ``x [B, N, C]``.

        Returns ``(gates [B, N, k], experts [B, N, k] long, logits [B, N, E])`` where ``gates`` is the
        softmax over the kept logits and ``logits`` the (noisy when active) router logits.
        """
        clean, scale = self.router(x, group)
        use_noise = self.noisy_gating and (self.training or self.eval_noise)
        logits = clean + torch.randn_like(clean) * scale if use_noise else clean
        top_vals, top_idx = logits.topk(self.top_k, dim=-1)
        return torch.softmax(top_vals, dim=-1), top_idx, logits

    def forward(self, x: torch.Tensor, group: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise DuetfairError(f"DistributionAwareMoE: expected tokens [B, N, {self.dim}], got {list(x.shape)}")
        B, N, C = x.shape
        T, k, E = B * N, self.top_k, self.num_experts
        gates, top_idx, logits = self.route(x, group)
        dtype = compute_dtype(x)
        path = self._resolve_dispatch(x, dtype)
        tokens = x.reshape(T, C)
        if path == "grouped_mm":  # the k copies of every token are made in the compute dtype
            tokens = self.experts.fold_tokens(tokens.to(dtype))
        flat = top_idx.reshape(T * k)
        order = torch.argsort(flat, stable=True)  # assignment slots sorted by expert
        inv = torch.empty_like(order).scatter_(0, order, torch.arange(T * k, device=x.device))
        sorted_ids = flat.index_select(0, order)
        ends = torch.searchsorted(sorted_ids, torch.arange(E, device=x.device, dtype=sorted_ids.dtype), right=True)
        counts = torch.diff(ends, prepend=ends.new_zeros(1))  # [E], static shape, no host sync
        xs = _Dispatch.apply(tokens, torch.div(order, k, rounding_mode="floor"), inv, k)
        ys = self.experts(xs, sorted_ids, counts, path)
        y = _Permute.apply(ys, inv, order).view(T, k, C)
        out = (y * gates.reshape(T, k, 1).to(y.dtype)).sum(1).view(B, N, C)
        self._aux = (
            self._balance_loss(logits, counts, T * k) if self.load_balance_weight > 0 and self.training else None
        )
        return out

    def _balance_loss(self, logits: torch.Tensor, counts: torch.Tensor, assignments: int) -> torch.Tensor:
        """Switch-style ``E * sum_e f_e P_e`` (1 when perfectly balanced) times the weight."""
        frac = counts.to(logits.dtype) / assignments
        prob = torch.softmax(logits.float(), dim=-1).reshape(-1, self.num_experts).mean(0)
        return self.load_balance_weight * self.num_experts * (frac.float() * prob).sum()

    def aux_loss(self) -> torch.Tensor:
        """Weighted load-balancing loss of the last training forward (scalar; 0 when off or in eval)."""
        if self._aux is None:
            return self.experts.w1.new_zeros(())
        return self._aux


class MoE(DistributionAwareMoE):
    """Attribute-blind MoE (the ablation): a single router, the group is ignored."""

    def __init__(
        self,
        dim: int,
        num_experts: int = 8,
        top_k: int = 2,
        hidden_mult: int = 4,
        dropout: float = 0.1,
        noisy_gating: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(dim, 1, num_experts, top_k, hidden_mult, dropout, noisy_gating, **kwargs)
