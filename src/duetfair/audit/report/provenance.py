"""The provenance section, last in every report: the duetfair version, the exact command, the
date and, where the caller knows them, the seed, the data source and the config (collapsed
blocks). Template ``provenance.html``."""

from __future__ import annotations

import json
import shlex
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

from duetfair.audit.report.section import ReportData, Section


def provenance(*, config: str | None = None, data: str | None = None, seed: Any = None, **extra: Any) -> dict[str, Any]:
    """What made a report: the duetfair version, the exact command (``sys.argv``) and the date, and
    where the caller knows them the config (its text), the data source, the seed and ``extra``
    entries (name -> text; a dict of texts is shown as collapsed blocks)."""
    from duetfair import __version__

    argv = [str(a) for a in sys.argv]
    if argv:
        name = Path(argv[0]).name
        if name == "__main__.py":
            argv = ["python", "-m", "duetfair", *argv[1:]]
        elif name == "duetfair":
            argv[0] = "duetfair"
    out: dict[str, Any] = {
        "duetfair": __version__,
        "command": shlex.join(argv),
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    for key, value in (("seed", seed), ("data", data), ("config", config), *extra.items()):
        if value is not None:
            out[key] = value
    return out


def audit_provenance(audit: Mapping[str, Any] | None) -> dict[str, Any]:
    """Default provenance of an audit: the bootstrap seed and the inputs ``duetfair score`` recorded."""
    out = provenance()
    if audit is None:
        return out
    out["seed"] = f"{audit.get('settings', {}).get('seed', 0)} (bootstrap)"
    inputs = audit.get("inputs")
    if isinstance(inputs, Mapping):
        parts = [f"{k}: {v}" for k, v in inputs.items() if isinstance(v, (str, int, float)) and k != "kind"]
        out["data"] = f"{inputs.get('kind', 'input')}" + (f" ({'; '.join(parts)})" if parts else "")
    return out


def _items(prov: Mapping[str, Any]) -> dict[str, Any]:
    """``items`` (name, text) of the table and ``blocks`` (name, text) shown collapsed."""
    items, blocks = [], []
    for key, value in prov.items():
        if key == "config" and isinstance(value, str):
            blocks.append(("config", value))
        elif isinstance(value, Mapping):
            blocks += [
                (f"{key}: {k}", v if isinstance(v, str) else json.dumps(v, indent=2, default=str))
                for k, v in value.items()
            ]
        elif isinstance(value, (list, tuple)):
            items.append((key, ", ".join(map(str, value))))
        else:
            items.append((key, str(value)))
    return {"items": items, "blocks": blocks}


def context(data: ReportData, figs: Mapping[str, Any]) -> dict[str, Any]:
    """``provenance`` (the audit's defaults, then the caller's entries) and the ``version``."""
    prov = {**audit_provenance(data.audit), **dict(data.provenance or {})}
    return {"provenance": _items(prov), "version": prov.get("duetfair", "")}


SECTION = Section(
    name="provenance", template="provenance.html", context=context, nav=lambda ctx: [("provenance", "Provenance")]
)
