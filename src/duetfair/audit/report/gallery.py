"""The failing-cases section: the worst cases of every group as thumbnails with the reference and
predicted contours (a :class:`~duetfair.audit.gallery.Gallery`). Template ``gallery.html``."""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from duetfair.audit.report.section import ReportData, Section


def build_gallery(source: Any, cases: pd.DataFrame, audit: Mapping[str, Any]) -> Any:
    """``source.build(cases, audit)``; a gallery that cannot be built becomes a note, never an error."""
    from duetfair.audit.gallery import Gallery

    try:
        return source.build(cases, audit)
    except Exception as exc:  # noqa: BLE001 - the report is written without the pictures
        return Gallery(notes=[f"gallery not drawn: {' '.join(str(exc).split())[:200]}"])


def context(data: ReportData, figs: Mapping[str, Any]) -> dict[str, Any] | None:
    """``gallery``: the cases by attribute and group; None without a built gallery."""
    gallery = data.gallery
    if gallery is None or not hasattr(gallery, "entries"):
        return None
    attrs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for e in gallery.entries:
        attrs.setdefault(str(e["attribute"]), {}).setdefault(str(e["group"]), []).append(e)
    return {
        "gallery": {
            "metric": gallery.metric,
            "per_group": gallery.per_group,
            "notes": list(gallery.notes),
            "n": len(gallery.entries),
            "attributes": [
                {"name": a, "groups": [{"name": g, "cases": cs} for g, cs in groups.items()]}
                for a, groups in attrs.items()
            ],
        }
    }


SECTION = Section(
    name="gallery", template="gallery.html", context=context, nav=lambda ctx: [("gallery", "Failing cases")]
)
