"""The figures of a metric's section: group means with intervals, per-case distributions, the tail
of every group with its CVaR region, and intersectional heatmaps (:mod:`duetfair.audit.report.metrics`
decides which are drawn)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from duetfair.audit.formatting import fmt
from duetfair.audit.report.figures import BLUE, WORST, figure, style
from duetfair.metrics.frame import MIN_GROUP_N
from duetfair.metrics.hidden import cvar


def plot_group_means(metric_key: str, attr: str, summary: Mapping[str, Any], overall: Mapping[str, Any]) -> Any:
    """Figure: mean of ``metric_key`` per group of ``attr`` with CI error bars and the value on
    every bar; the worst group hatched, the overall mean as a line."""
    groups = summary["groups"]
    labels = [f"{g['value']}\n(n={g['n']})" for g in groups]
    means = np.array([np.nan if g["mean"] is None else g["mean"] for g in groups], dtype=float)
    lo = np.array([np.nan if g["ci"][0] is None else g["ci"][0] for g in groups], dtype=float)
    hi = np.array([np.nan if g["ci"][1] is None else g["ci"][1] for g in groups], dtype=float)
    fig = figure(max(4.0, 0.9 * len(groups) + 2.0), 3.2)
    ax = fig.add_subplot()
    x = np.arange(len(groups))
    worst = summary["worst_group"]
    is_worst = [str(g["value"]) == str(worst) for g in groups]
    # a percentile interval need not contain the point estimate (tiny, skewed groups)
    err = np.clip(np.vstack([np.nan_to_num(means - lo), np.nan_to_num(hi - means)]), 0.0, None)
    bars = ax.bar(
        x,
        means,
        color=[WORST if w else BLUE for w in is_worst],
        alpha=0.85,
        width=0.6,
        edgecolor="black",
        linewidth=0.6,
    )
    for bar, w in zip(bars, is_worst):
        if w:
            bar.set_hatch("//")
    ax.errorbar(x, means, yerr=err, fmt="none", ecolor="black", capsize=4, lw=1.2)
    ax.axhline(overall["mean"], color="gray", ls="--", lw=1, label=f"overall {fmt(overall['mean'])}")
    ax.set_xticks(x, labels)
    finite = np.concatenate([lo[np.isfinite(lo)], means[np.isfinite(means)]])
    if finite.size:
        low = float(finite.min())
        top = float(np.nanmax(np.concatenate([hi[np.isfinite(hi)], means[np.isfinite(means)]])))
        pad = 0.15 * max(top - low, 1e-3)
        ax.set_ylim(max(0.0, low - pad) if low >= 0 else low - pad, top + 2.2 * pad)
    tops = np.where(np.isfinite(hi), np.fmax(hi, means), means)
    for xi, top_i, m in zip(x, tops, means):
        if np.isfinite(m):
            ax.text(xi, top_i, fmt(m), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel(f"mean {metric_key} (95% CI)")
    ax.set_xlabel(attr)
    ax.set_title(f"{metric_key} by {attr}: worst {worst} (hatched), ES {fmt(summary['es'])}", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_group_distribution(
    metric: str, attr: str, values: np.ndarray, labels: pd.Series, hidden: np.ndarray | None, seed: int = 0
) -> Any:
    """Figure: per-case ``metric`` per group (box + jittered points; hidden subtype as red crosses)."""
    cats = [c for c in labels.cat.categories if (labels == c).any()]
    fig = figure(max(4.5, 1.0 * len(cats) + 2.0), 3.6)
    ax = fig.add_subplot()
    rng = np.random.default_rng(seed)
    data = [values[(labels == c).to_numpy()] for c in cats]
    ax.boxplot(data, positions=np.arange(len(cats)), widths=0.5, showfliers=False, medianprops={"color": "black"})
    for i, c in enumerate(cats):
        mask = (labels == c).to_numpy()
        v = values[mask]
        jitter = rng.uniform(-0.18, 0.18, size=v.size)
        size = 6 if v.size < 500 else 3
        if hidden is not None:
            h = hidden[mask]
            ax.scatter(i + jitter[~h], v[~h], s=size, color=BLUE, alpha=0.35, lw=0)
            ax.scatter(
                i + jitter[h],
                v[h],
                s=size + 10,
                color=WORST,
                alpha=0.8,
                marker="x",
                lw=0.9,
                label="hidden hard subtype" if i == 0 else None,
            )
        else:
            ax.scatter(i + jitter, v, s=size, color=BLUE, alpha=0.35, lw=0)
    ax.set_xticks(np.arange(len(cats)), [f"{c}\n(n={d.size})" for c, d in zip(cats, data)])
    ax.set_ylabel(f"per-case {metric}")
    ax.set_xlabel(attr)
    ax.set_title(f"per-case {metric} by {attr}", fontsize=10)
    if hidden is not None and hidden.any():
        ax.legend(loc="lower left", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_tail(
    metric: str,
    attr: str,
    values: np.ndarray,
    labels: pd.Series,
    *,
    alpha: float = 0.1,
    threshold: float | None = None,
    higher_better: bool = True,
    cvar_method: str = "fractional",
) -> Any:
    """Figure: the per-case scores of every group sorted worst first (x: share of the group's
    cases), the CVaR region (worst ``alpha`` of each group) shaded and each group's CVaR drawn
    across it, the failure cut-off as a line."""
    cats = [c for c in labels.cat.categories if (labels == c).any()]
    fig = figure(6.0, 3.6)
    ax = fig.add_subplot()
    share = 100 * alpha
    ax.axvspan(0, share, color="0.88", zorder=0, label=f"CVaR region (worst {share:.0f}%)")
    for i, c in enumerate(cats):
        v = values[(labels == c).to_numpy()]
        v = np.sort(v) if higher_better else np.sort(v)[::-1]
        x = (np.arange(v.size) + 0.5) / v.size * 100
        tail = cvar(v, alpha, higher_better=higher_better, cvar_method=cvar_method)
        (line,) = ax.plot(
            x, v, lw=1.3, ms=4, markevery=max(1, v.size // 8), **style(i), label=f"{c} (n={v.size}): CVaR {fmt(tail)}"
        )
        ax.hlines(tail, 0, share, colors=line.get_color(), linestyles=style(i)["ls"], lw=2.4)
    if threshold is not None:
        ax.axhline(
            threshold,
            color="black",
            ls=(0, (1, 2)),
            lw=1,
            label=f"failure cut-off {'<' if higher_better else '>'} {fmt(threshold, 2)}",
        )
    ax.set_xlim(0, 50)
    ax.set_xlabel("share of the group's cases, worst first (%; the worst half shown)")
    ax.set_ylabel(f"per-case {metric}")
    ax.set_title(f"tail of per-case {metric} by {attr}: thick segments = CVaR{share:.0f}", fontsize=10)
    ax.legend(loc="lower right" if higher_better else "upper right", fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def plot_heatmap(
    metric: str,
    a: str,
    b: str,
    values: np.ndarray,
    la: pd.Series,
    lb: pd.Series,
    *,
    min_n: int = MIN_GROUP_N,
    higher_better: bool = True,
) -> Any:
    """Figure: mean ``metric`` over the groups of ``a`` x ``b`` with mean and n printed in every
    cell; cells with fewer than ``min_n`` cases greyed out and hatched (n only)."""
    import matplotlib

    ca = [c for c in la.cat.categories if (la == c).any()]
    cb = [c for c in lb.cat.categories if (lb == c).any()]
    mean = np.full((len(ca), len(cb)), np.nan)
    n = np.zeros((len(ca), len(cb)), dtype=int)
    va, vb = la.to_numpy(), lb.to_numpy()
    for i, ga in enumerate(ca):
        for j, gb in enumerate(cb):
            mask = (va == ga) & (vb == gb)
            n[i, j] = int(mask.sum())
            if n[i, j]:
                mean[i, j] = float(values[mask].mean())
    shown = np.where(n >= min_n, mean, np.nan)
    fig = figure(max(3.8, 0.85 * len(cb) + 2.4), max(2.6, 0.55 * len(ca) + 1.5))
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["viridis" if higher_better else "viridis_r"].with_extremes(bad="#d9d9d9")
    finite = shown[np.isfinite(shown)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if vmax - vmin < 1e-9:
        vmin, vmax = vmin - 0.01, vmax + 0.01
    im = ax.imshow(np.ma.masked_invalid(shown), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    _heat_cells(ax, shown, n, (vmin, vmax), min_n=min_n, higher_better=higher_better)
    rotate = max((len(str(c)) for c in cb), default=0) > 6
    ax.set_xticks(
        range(len(cb)), [str(c) for c in cb], rotation=30 if rotate else 0, ha="right" if rotate else "center"
    )
    ax.set_yticks(range(len(ca)), [str(c) for c in ca])
    ax.set_xlabel(b)
    ax.set_ylabel(a)
    fig.colorbar(im, ax=ax, label=f"mean {metric}", shrink=0.85)
    ax.set_title(f"mean {metric}: {a} x {b} (grey: n < {min_n})", fontsize=10)
    return fig


def _heat_cells(
    ax: Any, shown: np.ndarray, n: np.ndarray, limits: tuple[float, float], *, min_n: int, higher_better: bool
) -> None:
    """Mean and n printed in every cell of a heatmap; cells with fewer than ``min_n`` cases hatched."""
    from matplotlib.patches import Rectangle

    vmin, vmax = limits
    for i, j in np.ndindex(*shown.shape):
        if n[i, j] >= min_n:
            level = (shown[i, j] - vmin) / (vmax - vmin)
            dark = level < 0.55 if higher_better else level > 0.45
            color = "white" if dark else "black"
            ax.text(j, i, f"{fmt(shown[i, j])}\nn={n[i, j]}", ha="center", va="center", fontsize=8, color=color)
        else:
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", edgecolor="0.6", lw=0))
            ax.text(j, i, f"n={n[i, j]}\ntoo few", ha="center", va="center", fontsize=7, color="0.25")
