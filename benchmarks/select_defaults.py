"""Choosing the defaults of the robust methods on the validation split (never on test).

Every variant is trained on the synthetic ``fundus2d`` task at the published benchmark's ``bench``
size for the tuning seeds and evaluated on each seed's *validation* split; the test split is not
read. Printed per variant: overall Dice, worst-group Dice and the worst group's CVaR10 of per-case
Dice (the tail a group mean hides), each as the mean over seeds with a bootstrap interval across
seeds, and the paired difference to the reference method (dMoE alone for FairDRO variants, the
plain model for GroupDRO variants).

    python benchmarks/select_defaults.py --runs runs/select --seeds 3
    python benchmarks/select_defaults.py --study two_stage --runs runs/select_two_stage --seeds 3

``--study dro`` (default): the FairDRO and GroupDRO variants. ``--study two_stage``: Just Train
Twice (up-weight), subclass DRO (feature space, subclass-balanced batches) and the subclass dMoE
(clusters per group, subclass-balanced batches), each against ERM.

Writes ``benchmarks/results/select_defaults.json``; finished runs in ``--runs`` are reused, so a
killed study continues with the same command. ``--only`` trains a subset (e.g. to run two
processes side by side).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import pandas as pd  # noqa: E402

from duetfair.experiments.methods import aggregate_seeds, run_benchmark  # noqa: E402
from duetfair.io import write_json  # noqa: E402

#: variant -> (method, overrides, reference variant of the paired difference)
VARIANTS: dict[str, tuple[str, list[str], str]] = {
    "erm": ("erm", [], "erm"),
    "dmoe": ("dmoe", [], "dmoe"),
    "fair_dro kl tau=1 size": ("fair_dro", ["objective.args={within: kl, tau: 1.0, across: size}"], "dmoe"),
    "fair_dro cvar 0.5 uniform (in-batch)": (
        "fair_dro",
        ["objective.args={within: cvar, alpha: 0.5, across: uniform}"],
        "dmoe",
    ),
    "fair_dro dual_cvar 0.5 size": (
        "fair_dro",
        ["objective.args={within: dual_cvar, alpha: 0.5, across: size}"],
        "dmoe",
    ),
    "fair_dro dual_cvar 0.5 uniform + balanced": (
        "fair_dro",
        ["objective.args={within: dual_cvar, alpha: 0.5, across: uniform}", "train.balance_by=groups"],
        "dmoe",
    ),
    "group_dro": ("group_dro", ["objective.args={step_size: 0.01}", "train.balance_by=null"], "erm"),
    "group_dro + balanced": ("group_dro", ["objective.args={step_size: 0.01}", "train.balance_by=groups"], "erm"),
}
TWO_STAGE: dict[str, tuple[str, list[str], str]] = {
    "erm": ("erm", [], "erm"),
    "jtt upweight 5": ("jtt", ["objective.args.upweight=5.0"], "erm"),
    "jtt upweight 20": ("jtt", ["objective.args.upweight=20"], "erm"),
    "subclass_dro features, balanced": ("subclass_dro", ["objective.args.space=features"], "erm"),
    "subclass_dro descriptors, balanced": ("subclass_dro", ["objective.args.space=descriptors"], "erm"),
    "subclass_dro features, natural batches": (
        "subclass_dro",
        ["objective.args.space=features", "objective.args.balance=false"],
        "erm",
    ),
    "subclass_moe 2 clusters, natural batches": ("subclass_moe", ["model.subclasses.clusters=2"], "erm"),
    "subclass_moe 2 clusters, subclass-balanced": (
        "subclass_moe",
        ["model.subclasses.clusters=2", "train.balance_by=subclass"],
        "erm",
    ),
    "subclass_moe 3 clusters, natural batches": ("subclass_moe", ["model.subclasses.clusters=3"], "erm"),
    "jtt upweight 5, first stage half": (
        "jtt",
        ["objective.args.upweight=5.0", "objective.first_stage.fraction=0.5"],
        "erm",
    ),
    "subclass_moe 3 clusters, first stage half": (
        "subclass_moe",
        ["model.subclasses.clusters=3", "objective.first_stage.fraction=0.5"],
        "erm",
    ),
}
STUDIES = {"dro": VARIANTS, "two_stage": TWO_STAGE}
SCORES = ("dice", "worst_dice", "worst_cvar10", "hidden_dice")


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", choices=sorted(STUDIES), default="dro")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--size", default="bench")
    parser.add_argument("--task", default="fundus2d")
    parser.add_argument("--runs", default="runs/select_defaults")
    parser.add_argument("--only", nargs="+", default=None, help="variants to train (default: all of the study)")
    parser.add_argument("--threads", type=int, default=None, help="train.threads of every run")
    parser.add_argument("--set", action="append", default=[], help="extra config override of every run")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "select_defaults.json"))
    args = parser.parse_args()
    variants = STUDIES[args.study]
    names = args.only or list(variants)
    unknown = sorted(set(names) - set(variants))
    if unknown:
        parser.error(f"--only: unknown variant(s) {unknown}; expected some of {list(variants)}")
    if args.study != "dro" and args.out.endswith("select_defaults.json"):
        args.out = args.out.replace("select_defaults.json", f"select_defaults_{args.study}.json")
    extra = [*args.set, *([f"train.threads={args.threads}"] if args.threads else [])]
    t0 = time.perf_counter()
    rows = []
    for name in names:
        method, overrides, _ = variants[name]
        print(f"== {name}", flush=True)
        result = run_benchmark(
            Path(args.runs) / slug(name),
            task=args.task,
            methods=[method],
            seeds=list(range(args.seeds)),
            size=args.size,
            extra=[*overrides, *extra],
            split="val",
            log=lambda s: print(s, flush=True),
        )
        rows += [{**r, "key": name, "method": name} for r in result["per_seed"]]
    if args.only:
        return
    per_seed = pd.DataFrame(rows)
    agg = aggregate_seeds(per_seed, sorted({v[2] for v in variants.values()}))
    paired = SCORES if args.study == "two_stage" else SCORES[:3]
    lines = ["| variant | " + " | ".join(SCORES) + " | vs reference: " + ", ".join(paired) + " |"]
    lines.append("|" + "---|" * (len(SCORES) + 2))
    for _, r in agg.iterrows():
        ref = variants[r["key"]][2]
        cells = [f"{r[c]:.3f} ({r[f'{c}_ci'][0]:.3f}-{r[f'{c}_ci'][1]:.3f})" for c in SCORES]
        diffs = [
            f"{r[f'{c}_vs_{ref}']:+.3f} ({r[f'{c}_vs_{ref}_ci'][0]:+.3f} to {r[f'{c}_vs_{ref}_ci'][1]:+.3f})"
            for c in paired
        ]
        lines.append(f"| {r['key']} | " + " | ".join(cells) + f" | vs {ref}: " + "; ".join(diffs) + " |")
    table = "\n".join(lines)
    print(table)
    seconds = time.perf_counter() - t0
    write_json(
        args.out,
        {
            "task": args.task,
            "size": args.size,
            "split": "val",
            "seeds": list(range(args.seeds)),
            "study": args.study,
            "variants": {k: {"method": v[0], "overrides": v[1], "reference": v[2]} for k, v in variants.items()},
            "aggregate": agg.to_dict(orient="records"),
            "per_seed": per_seed.to_dict(orient="records"),
            "table": table,
            "seconds": seconds,
        },
    )
    print(f"wrote {args.out} ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
