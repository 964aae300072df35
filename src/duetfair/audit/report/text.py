"""The text forms of an audit: the Markdown report (:func:`render_markdown`, the sections with a
Markdown form in order) and the console summary (:func:`render_summary`)."""

from __future__ import annotations

from typing import Any, Mapping

from duetfair.audit.discovery import itemset_label
from duetfair.audit.formatting import fmt, fmt_ci, fmt_signed_ci, pct, pvalue
from duetfair.audit.markdown import md_text
from duetfair.audit.metric_notes import metric_title, missing_note
from duetfair.audit.report.findings import markdown_findings
from duetfair.audit.report.guarantees import markdown_guarantees, summary_lines
from duetfair.audit.report.metrics import hidden_name
from duetfair.audit.report.metrics import markdown as markdown_metrics


def render_markdown(audit: Mapping[str, Any], *, title: str = "duetfair audit") -> str:
    """Markdown report of an audit dict (same content as the JSON, for people); every value from
    the data (title, column and group names) is escaped (:func:`~duetfair.audit.markdown.md_text`)."""
    s = audit.get("settings", {})
    lines = [f"# {md_text(title)}", ""]
    lines.append(
        f"{audit.get('n_rows', 0)} rows; attributes: {md_text(', '.join(audit.get('by', [])))}; "
        f"{s.get('n_boot', 0)} bootstrap resamples (seed {s.get('seed', 0)}, "
        f"{int(100 * s.get('level', 0.95))}% percentile intervals); "
        f"equity-scaled variant {md_text(s.get('es_variant', 'sum_abs'))}; CVaR fraction {s.get('cvar_alpha', 0.1)}."
    )
    lines.append("")
    lines += markdown_findings(audit) + markdown_guarantees(audit) + markdown_metrics(audit)
    return "\n".join(lines).rstrip() + "\n"


def render_summary(audit: Mapping[str, Any], *, top_subgroups: int = 3) -> str:
    """A short plain-text summary of an audit (what a console prints)."""
    lines: list[str] = []
    for key, m in audit["metrics"].items():
        lines.append(
            f"{metric_title(audit, key)}: overall {fmt_ci(m['overall']['mean'], m['overall']['ci'])} "
            f"over {m['n_cases']} cases{missing_note(m)}"
        )
        for attr, a in m["attributes"].items():
            lines.append(
                f"  by {attr:<10} worst {a['worst_group']} {fmt(a['worst_mean'])}, gap {fmt(a['gap'])}, "
                f"ES {fmt_ci(a['es'], a['es_ci'])}, worst-group CVaR10 {fmt(a['worst_cvar10'])}"
            )
        for sg in m.get("subgroups", [])[:top_subgroups]:
            lines.append(
                f"  subgroup {itemset_label(sg['itemset'])}: n={sg['n']}, mean {fmt(sg['mean'])} "
                f"({float(sg['divergence']):+.3f}, t={fmt(sg['t'], 1)}, q={pvalue(sg.get('q_value'))})"
            )
        if key == next(iter(audit["metrics"])):
            lines += summary_lines(audit)
        if m.get("hidden_subtype"):
            h = m["hidden_subtype"]
            lines.append(
                f"  hidden hard subtype ({hidden_name(h)}): {h['n']} cases, mean {fmt(h['mean'])} vs "
                f"{fmt(h['mean_rest'])}; {pct(h['share_in_worst_decile'])} of the worst 10% of cases"
            )
    for s in audit.get("hidden_slices", [])[:top_subgroups]:
        lines.append(
            f"hidden failure slice ({s['within']}): {s['definition']}: n={s['n']}, mean {fmt(s['mean'])} vs "
            f"{fmt(s['mean_rest'])}, gap {fmt_signed_ci(s['gap'], s['gap_ci'])}, q={pvalue(s['q'])}"
        )
    return "\n".join(lines) + "\n"
