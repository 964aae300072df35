"""Routing on discovered subclasses (``subclass_moe``): the router gives every case, of any split or
a new image, the cluster of its group; training, evaluation and prediction agree on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from duetfair.engine.config import load_config, with_method
from duetfair.engine.predict import predict_files
from duetfair.engine.subclasses import SUBCLASS, SubclassRouter, check_subclass_config
from duetfair.errors import DuetfairError
from duetfair.objectives.stage import FeatureTransform
from first_stage_cases import planted_first_stage


def test_router_puts_new_cases_in_the_cluster_of_their_group_and_round_trips(tmp_path: Path) -> None:
    first, hard = planted_first_stage(hard_share=0.25)
    router = SubclassRouter.fit(first, clusters=2, min_size=5)
    words = np.array(router.assign(first.features, first.groups))
    assert (words[hard] == "c1").all() and (words[~hard] == "c0").all()  # the subtype is the smaller cluster
    router.save(tmp_path / "router.npz")
    again = SubclassRouter.load(tmp_path / "router.npz")
    rng = np.random.default_rng(1)
    new = np.concatenate([rng.standard_normal((3, 16)) + 6.0, rng.standard_normal((3, 16))])
    groups = np.array([0, 1, -1, 0, 1, -1])
    assert again.assign(new, groups) == ["c1", "c1", None, "c0", "c0", None]
    assert again.assign(first.features, first.groups) == list(words)
    with pytest.raises(DuetfairError, match="missing"):
        SubclassRouter.load(tmp_path / "none.npz")


def test_feature_transform_equals_a_scaler_and_pca_fitted_by_sklearn() -> None:
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    train_x = rng.standard_normal((40, 12)) @ rng.standard_normal((12, 12))
    train_x[:, 3] = 2.0  # a constant column is dropped
    new = rng.standard_normal((5, 12))
    keep = np.arange(12) != 3
    scaler = StandardScaler().fit(train_x[:, keep])
    pca = PCA(n_components=8, random_state=0).fit(scaler.transform(train_x[:, keep]))
    ours = FeatureTransform.fit(train_x, max_dims=8)
    assert np.allclose(ours(new), pca.transform(scaler.transform(new[:, keep])))
    back = FeatureTransform.from_arrays(ours.arrays())
    assert np.array_equal(back(new), ours(new))


def test_method_sets_the_routing_and_another_method_drops_it(tiny) -> None:
    cfg = tiny("subclass_moe")
    assert cfg.model.subclasses is not None and cfg.model.subclasses.clusters == 3
    assert cfg.objective.first_stage is not None and cfg.needs_first_stage
    assert load_config("fundus2d_erm").config_hash() == load_config("fundus2d").config_hash()
    switched = with_method(cfg.to_dict(), "erm")
    assert "subclasses" not in switched["model"]


def test_routing_needs_a_dmoe_model_and_a_group_attribute(tiny) -> None:
    cfg = tiny("erm", "model.subclasses.clusters=2", "objective.first_stage.epochs=1")
    with pytest.raises(DuetfairError, match="needs a dMoE model"):
        check_subclass_config(cfg)
    with pytest.raises(DuetfairError, match="needs data.group_attribute"):
        check_subclass_config(tiny("subclass_moe", "data.group_attribute=null"))
    check_subclass_config(tiny("subclass_moe"))


def test_trainer_names_the_missing_group_attribute_first(tmp_path: Path, tiny) -> None:
    from duetfair.engine.trainer import Trainer

    with pytest.raises(DuetfairError, match="^config model.subclasses: needs data.group_attribute"):
        Trainer(tiny("subclass_moe", "data.group_attribute=null"), tmp_path / "run")


def test_run_routes_on_its_groups_and_subclasses_and_reports_them(subclass_run: Path) -> None:
    import json

    record = json.loads((subclass_run / "run.json").read_text())
    assert record["route_attributes"] == ["race", SUBCLASS]
    spec = json.loads((subclass_run / "group_spec.json").read_text())
    assert spec["attributes"][-1]["name"] == SUBCLASS and spec["attributes"][-1]["values"] == ["c0", "c1"]
    summary = pd.read_csv(subclass_run / "first_stage" / "subgroup_summary.csv")
    assert summary["n"].sum() == 24 and set(summary["subgroup"]) <= {"c0", "c1"}
    weights = torch.load(subclass_run / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert any("router" in k for k in weights)  # a dMoE was trained
    assert {"purity", "recall"} <= set(summary.columns)
    cases = pd.read_csv(subclass_run / "cases.csv")
    assert cases[SUBCLASS].isin(["c0", "c1"]).all()  # every test case got its cluster from its image
    audit = json.loads((subclass_run / "audit.json").read_text())
    assert SUBCLASS not in audit["by"]  # a run's own clusters are audited only when named


def test_predict_gives_a_new_image_the_subclass_evaluate_gave_it(subclass_run: Path, tmp_path: Path) -> None:
    from duetfair.engine.adapters import build_datasets
    from duetfair.engine.evaluate import load_run

    cfg, _, _ = load_run(subclass_run)
    test = build_datasets(cfg.data.kind, cfg.data.args)["test"]
    rows = []
    for i in range(len(test)):
        case = test[i]
        path = tmp_path / f"{case['case_id']}.npy"
        np.save(path, case["image"][0].numpy())  # one channel, [H, W]
        rows.append({"case_id": case["case_id"], "image": path.name, "race": case["attrs"]["race"]})
    pd.DataFrame(rows).to_csv(tmp_path / "cases.csv", index=False)
    table = predict_files(subclass_run, [], tmp_path / "out", manifest=tmp_path / "cases.csv", normalize="none")
    evaluated = pd.read_csv(subclass_run / "cases.csv").drop_duplicates("case_id").set_index("case_id")[SUBCLASS]
    assert set(evaluated) == {"c0", "c1"}
    assert table.set_index("case_id")[SUBCLASS].to_dict() == evaluated.to_dict()
    with pytest.raises(DuetfairError, match="not an attribute"):
        predict_files(subclass_run, [path], tmp_path / "bad", attrs={SUBCLASS: "c1"}, normalize="none")


def test_reaudit_of_a_run_routed_on_subclasses_reproduces_its_audit(
    subclass_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from helpers import run

    code, stdout, err = run(["audit", str(subclass_run / "cases.csv")], capsys)
    assert code == 0, err
    assert json.loads(stdout) == json.loads((subclass_run / "audit.json").read_text())
