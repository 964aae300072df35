"""Scoring a large cohort in parts: ``duetfair score --shard K/N`` and ``--merge``.

Scoring is independent per case, so a cohort of tens of thousands of volumes can be scored by a
cluster job array: every task scores a stable share of the cases and writes a *part*; one final
step merges the parts and audits them as one table.

Shares
    Case ``c`` belongs to shard ``1 + (first 8 bytes of SHA-256(c)) mod N``: the same for every
    task, machine and Python version (never Python's salted ``hash``), and independent of the
    order of the files. Every task matches the full folders (so a missing reference is reported
    by each task, as without shards) and keeps its own cases.

A part (the ``--out`` folder of one task)
    ``cases.csv``: the rows of its cases exactly as scoring produced them (label ids, not yet
    named; labels a case lacks not yet added, because the labels of the cohort are only known
    once every part is in), and ``shard.json``: the shard, the number of cases of the whole
    cohort with a digest of their ids, this part's case ids, and the scoring settings.

Merging
    Parts are refused (one line) when they disagree on N, the cohort or the settings, when a shard
    is given twice or is missing, when a case is in two parts, when the parts do not add up to
    the cohort, or when a case sits in a part that does not own it. The merged rows then go
    through the same completion and ordering as unsharded scoring
    (:func:`~duetfair.metrics.folders.finish_table`), so the table, and every number audited from
    it, equals that of one process.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from duetfair.errors import DuetfairError, require
from duetfair.io import read_json
from duetfair.metrics.folders import CasePair, CaseScore, Region, ScoreSpec, finish_table

SHARD_FILE = "shard.json"
"""Name of a part's description, beside its ``cases.csv``."""

SCHEMA = "duetfair.shard/1"


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"3/8"`` -> ``Shard(3, 8)``; one-line errors for anything else."""
        k, sep, n = str(text).strip().partition("/")
        try:
            index, count = int(k), int(n)
        except ValueError:
            raise DuetfairError(f"--shard {text}: expected K/N, e.g. 3/8 (shard 3 of 8)") from None
        require(sep == "/" and count >= 1, f"--shard {text}: expected K/N with N >= 1, e.g. 3/8")
        require(1 <= index <= count, f"--shard {text}: expected K from 1 to {count} (SLURM: --array=1-{count})")
        return cls(index, count)

    def owns(self, case_id: str) -> bool:
        """Whether ``case_id`` is scored by this shard."""
        return shard_of(case_id, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(case_id: str, count: int) -> int:
    """The shard (1..count) of a case id: stable across machines, processes and Python versions."""
    digest = hashlib.sha256(str(case_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % int(count) + 1


def cases_digest(case_ids: Sequence[str]) -> str:
    """Digest of a cohort's case ids (order-free): parts of different cohorts cannot be merged."""
    return hashlib.sha256("\n".join(sorted(map(str, case_ids))).encode("utf-8")).hexdigest()[:32]


def spec_record(spec: ScoreSpec, label_names: Mapping[int, str] | None) -> dict[str, Any]:
    """JSON form of the scoring settings a part was made with (compared between parts)."""
    return {
        "labels": None if spec.labels is None else [int(v) for v in spec.labels],
        "regions": [[str(r.name), [int(i) for i in r.ids]] for r in spec.regions],
        "metrics": list(spec.metrics),
        "empty": str(spec.empty),
        "nsd_tolerance": float(spec.nsd_tolerance),
        "label_names": {str(k): str(v) for k, v in (label_names or {}).items()},
    }


def spec_from_record(record: Mapping[str, Any]) -> tuple[ScoreSpec, dict[int, str]]:
    """Inverse of :func:`spec_record`."""
    labels = record.get("labels")
    spec = ScoreSpec(
        None if labels is None else tuple(int(v) for v in labels),
        tuple(Region(str(name), tuple(int(i) for i in ids)) for name, ids in record.get("regions", [])),
        tuple(record.get("metrics", ())),
        str(record.get("empty")),
        float(record.get("nsd_tolerance", 1.0)),
    )
    return spec, {int(k): str(v) for k, v in (record.get("label_names") or {}).items()}


def select_shard(pairs: Sequence[CasePair], shard: Shard) -> list[CasePair]:
    """The pairs of ``shard`` (order kept)."""
    return [p for p in pairs if shard.owns(p.case_id)]


def write_part(
    out_dir: str | os.PathLike[str],
    scores: Sequence[CaseScore],
    *,
    shard: Shard,
    cohort: Sequence[str],
    spec: ScoreSpec,
    label_names: Mapping[int, str] | None = None,
    source: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write one part: ``cases.csv`` (the raw rows) and ``shard.json``. ``cohort``: every case id
    of the whole cohort (all shards)."""
    from duetfair.io import atomic_path, write_json

    out = Path(out_dir)
    require(not out.exists() or out.is_dir(), f"--out {out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    frames = [s.rows for s in scores if not s.rows.empty]
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["case_id", "class"])
    paths = {"cases": out / "cases.csv", "shard": out / SHARD_FILE}
    with atomic_path(paths["cases"]) as tmp:
        rows.to_csv(tmp, index=False)
    write_json(
        paths["shard"],
        {
            "schema": SCHEMA,
            "shard": shard.index,
            "of": shard.count,
            "n_cases_total": len(cohort),
            "cases_digest": cases_digest(cohort),
            "case_ids": [s.case_id for s in scores],
            "settings": spec_record(spec, label_names),
            "source": dict(source or {}),
        },
    )
    return paths


@dataclass
class Part:
    """A part read back: where it is, its description and its rows."""

    path: Path
    info: dict[str, Any]
    rows: pd.DataFrame


def find_parts(locations: Sequence[str]) -> list[Path]:
    """Part folders of ``--merge`` arguments: a part (a folder with ``shard.json``, or its
    ``cases.csv``) or a folder whose sub-folders are parts (``parts/`` of a job array)."""
    found: list[Path] = []
    for loc in locations:
        p = Path(loc)
        if p.is_file() and p.name != SHARD_FILE:
            p = p.parent
        require(p.is_dir(), f"--merge {loc}: folder not found")
        if (p / SHARD_FILE).is_file():
            found.append(p)
            continue
        subs = sorted(d for d in p.iterdir() if d.is_dir() and (d / SHARD_FILE).is_file())
        require(
            len(subs) > 0,
            f"--merge {loc}: no {SHARD_FILE} in it or in its sub-folders; expected parts written by --shard",
        )
        found.extend(subs)
    require(len(found) > 0, "--merge: expected at least one part")
    return found


def read_part(path: Path) -> Part:
    """One part's ``shard.json`` and ``cases.csv``, with one-line errors."""
    info = read_json(path / SHARD_FILE, "a part written by duetfair score --shard")
    require(
        isinstance(info, dict) and info.get("schema") == SCHEMA,
        f"{path / SHARD_FILE}: not a part written by duetfair score --shard (schema {SCHEMA})",
    )
    for key in ("shard", "of", "n_cases_total", "cases_digest", "case_ids", "settings"):
        require(key in info, f"{path / SHARD_FILE}: no '{key}'; expected a part written by duetfair score --shard")
    csv = path / "cases.csv"
    require(csv.is_file(), f"{csv}: file not found; the part is incomplete (was its task killed?)")
    return Part(path, info, _read_rows(csv))


def _read_rows(csv: Path) -> pd.DataFrame:
    """A part's ``cases.csv`` as written: ids and classes as text (``007`` stays ``007``), metric
    cells as numbers (empty = NaN, ``inf`` kept), counts as integers."""
    try:
        raw = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DuetfairError(f"{csv}: cannot read the part's table ({' '.join(str(exc).split())[:120]})") from None
    if raw.empty:
        return pd.DataFrame()
    for col in ("case_id", "class", "n_ref", "n_pred"):
        require(col in raw.columns, f"{csv}: no '{col}' column; expected a part written by duetfair score --shard")
    out = raw.copy()
    for col in raw.columns:
        if col in ("case_id", "class"):
            continue
        values = pd.to_numeric(raw[col].replace("", np.nan), errors="coerce")
        bad = values.isna() & (raw[col] != "")
        require(
            not bad.any(), f"{csv}: column '{col}' holds '{raw[col][bad].iloc[0] if bad.any() else ''}', not a number"
        )
        out[col] = values.astype(np.int64) if col in ("n_ref", "n_pred") else values.astype(np.float64)
    return out


def merge_parts(locations: Sequence[str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The per-case table of all parts, identical to scoring the cohort in one process, and a
    description of the merge (for the audit's ``inputs``). Refuses overlaps, gaps and mixed parts."""
    parts = [read_part(p) for p in find_parts(locations)]
    first = parts[0].info
    for part in parts[1:]:
        for key, what in (("of", "number of shards"), ("cases_digest", "cohort"), ("settings", "scoring settings")):
            require(
                part.info[key] == first[key],
                f"--merge: {part.path} and {parts[0].path} differ in their {what}; merge the parts of one scoring run",
            )
    count = int(first["of"])
    by_index: dict[int, Path] = {}
    for part in parts:
        k = int(part.info["shard"])
        require(k not in by_index, f"--merge: shard {k}/{count} given twice ({by_index.get(k)} and {part.path})")
        by_index[k] = part.path
    missing = [k for k in range(1, count + 1) if k not in by_index]
    require(
        not missing,
        f"--merge: {len(missing)} of {count} shards missing ({', '.join(f'{k}/{count}' for k in missing[:10])}); "
        f"the parts given hold shards {', '.join(map(str, sorted(by_index)))}",
    )
    spec, names = spec_from_record(first["settings"])
    scores = _scores(parts, count, spec)
    require(
        len(scores) == int(first["n_cases_total"]),
        f"--merge: the parts hold {len(scores)} cases, the cohort has {first['n_cases_total']}; a part is incomplete",
    )
    table = finish_table(sorted(scores, key=lambda s: s.case_id), spec, names)
    sources = [p.info.get("source") or {} for p in sorted(parts, key=lambda p: int(p.info["shard"]))]
    n_missing = sum(int(s.get("n_missing_predictions", 0)) for s in sources)
    merged = {
        **{k: v for k, v in sources[0].items() if k not in ("n_missing_predictions", "missing_predictions")},
        "n_missing_predictions": n_missing,
        "shards": count,
        "parts": [str(p.path) for p in sorted(parts, key=lambda p: int(p.info["shard"]))],
    }
    return table, merged


def _scores(parts: Sequence[Part], count: int, spec: ScoreSpec) -> list[CaseScore]:
    """Rebuild every case's scores from the parts' rows; overlaps and misplaced cases refused."""
    regions = {str(r.name) for r in spec.regions}
    owner: dict[str, Path] = {}
    scores: list[CaseScore] = []
    for part in parts:
        k = int(part.info["shard"])
        rows = part.rows
        if not rows.empty:
            rows = rows.assign(**{"class": [_class_value(c, regions) for c in rows["class"]]})
            rows["case_id"] = rows["case_id"].astype(str)
        groups = dict(tuple(rows.groupby("case_id", sort=False))) if not rows.empty else {}
        for cid in map(str, part.info["case_ids"]):
            require(cid not in owner, f"--merge: case '{cid}' is in two parts ({owner.get(cid)} and {part.path})")
            require(
                shard_of(cid, count) == k,
                f"--merge: case '{cid}' in {part.path} belongs to shard {shard_of(cid, count)}/{count}, "
                f"not {k}/{count}",
            )
            owner[cid] = part.path
            case_rows = groups.get(cid, pd.DataFrame()).reset_index(drop=True)
            scores.append(CaseScore(cid, case_rows, *_present(case_rows)))
        extra = set(groups) - set(map(str, part.info["case_ids"]))
        require(not extra, f"--merge: {part.path}/cases.csv has rows of cases its shard.json does not list")
    return scores


def _class_value(value: Any, regions: set[str]) -> Any:
    """A ``class`` cell read back from CSV: the region name, else the integer label id."""
    text = str(value)
    if text in regions:
        return text
    try:
        return int(float(text))
    except ValueError:
        raise DuetfairError(
            f"--merge: class '{text}' is neither a label id nor a region of the part's settings"
        ) from None


def _present(rows: pd.DataFrame) -> tuple[list[int], list[int]]:
    """Labels present in a case's reference / prediction (from its rows' voxel counts)."""
    if rows.empty:
        return [], []
    labels = rows[[isinstance(c, (int, np.integer)) for c in rows["class"]]]
    ref = sorted(int(c) for c, n in zip(labels["class"], labels["n_ref"]) if int(n) > 0)
    pred = sorted(int(c) for c, n in zip(labels["class"], labels["n_pred"]) if int(n) > 0)
    return ref, pred
