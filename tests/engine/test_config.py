"""Config loading: validation messages, --set overrides, extends, method shortcut, packaged configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from duetfair.engine.config import (
    ExperimentConfig,
    apply_overrides,
    list_packaged_configs,
    load_config,
    load_raw,
    parse_override,
    save_config,
    validate,
)
from duetfair.errors import DuetfairError


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_defaults_validate() -> None:
    cfg = validate({})
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.train.epochs >= 1 and cfg.select_rule == "overall"


def test_literal_error_names_key_and_allowed_values() -> None:
    with pytest.raises(DuetfairError) as err:
        validate({"train": {"select": "best"}})
    msg = str(err.value)
    assert "train.select" in msg and "'best'" in msg
    assert "overall" in msg and "worst_group" in msg and "es" in msg
    assert "\n" not in msg


def test_unknown_key_and_bad_number() -> None:
    with pytest.raises(DuetfairError, match=r"optim\.lrr: unknown key"):
        validate({"optim": {"lrr": 0.1}})
    with pytest.raises(DuetfairError, match=r"train\.epochs"):
        validate({"train": {"epochs": 0}})
    with pytest.raises(DuetfairError, match=r"method: 'dmo' is not one of .*'dmoe'"):
        validate({"method": "dmo"})


def test_overrides_parse_yaml_values() -> None:
    assert parse_override("optim.lr=3e-4") == (["optim", "lr"], 3e-4)
    assert parse_override("train.amp=off") == (["train", "amp"], "off")
    assert parse_override("data.args.n_train=12")[1] == 12
    raw = apply_overrides({"train": {"epochs": 3}}, ["train.epochs=5", "model.args.depth=2", "seed=7"])
    assert raw == {"train": {"epochs": 5}, "model": {"args": {"depth": 2}}, "seed": 7}
    with pytest.raises(DuetfairError, match="KEY=VALUE"):
        parse_override("train.epochs")
    with pytest.raises(DuetfairError, match="'train.epochs' is a value"):
        apply_overrides({"train": {"epochs": 3}}, ["train.epochs.x=1"])


def test_method_shortcut_sets_model_variant_and_objective() -> None:
    cfg = validate({"method": "fair_dro", "model": {"name": "vit_seg"}})
    assert cfg.model.name == "vit_seg_dmoe" and cfg.objective.name == "fair_dro"
    assert cfg.select_rule == "worst_group"
    cfg = validate({"method": "moe", "model": {"name": "resunet3d"}, "objective": {"name": "group_dro"}})
    assert cfg.model.name == "resunet3d_moe" and cfg.objective.name == "group_dro"  # explicit objective wins
    with pytest.raises(DuetfairError, match="needs a backbone with MoE variants"):
        validate({"method": "dmoe", "model": {"name": "unet"}})


def test_extends_and_overrides_from_file(tmp_path: Path) -> None:
    _write(tmp_path / "base.yaml", {"seed": 1, "train": {"epochs": 4, "batch_size": 8}, "model": {"name": "vit_seg"}})
    child = _write(tmp_path / "child.yaml", {"extends": "base.yaml", "method": "dmoe", "train": {"epochs": 2}})
    cfg = load_config(child, ["train.batch_size=4"])
    assert (cfg.seed, cfg.train.epochs, cfg.train.batch_size, cfg.model.name) == (1, 2, 4, "vit_seg_dmoe")
    out = save_config(cfg, tmp_path / "run" / "config.yaml")
    again = load_config(out)
    assert again.to_dict() == cfg.to_dict()
    assert again.config_hash() == cfg.config_hash()
    assert load_config(out, ["optim.lr=0.5"]).config_hash() != cfg.config_hash()


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DuetfairError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(DuetfairError, match="not valid YAML"):
        load_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("3\n")
    with pytest.raises(DuetfairError, match="mapping"):
        load_config(scalar)
    loop = _write(tmp_path / "loop.yaml", {"extends": "loop.yaml"})
    with pytest.raises(DuetfairError, match="cycle"):
        load_config(loop)


def test_packaged_configs_all_validate() -> None:
    names = list_packaged_configs()
    for task in ("fundus2d", "lesion2d", "tumor3d"):
        for method in ("erm", "group_dro", "febs", "adversarial", "moe", "dmoe", "fair_dro", "divergence"):
            assert f"{task}_{method}" in names
    for real in ("fairseg", "ham10000", "mamamia"):
        assert real in names
    for name in names:
        cfg = load_config(name)
        assert cfg.name and cfg.output_dir


def test_with_method_switches_a_user_config_to_each_method() -> None:
    from duetfair.engine.config import load_raw, with_method

    raw = load_raw("fundus2d_fair_dro")  # dMoE + FairDRO with its own objective args
    erm = validate(with_method(raw, "erm"))
    assert (erm.method, erm.model.name, erm.objective.name, erm.objective.args) == ("erm", "vit_seg", "erm", {})
    dmoe = validate(with_method(raw, "dmoe"))
    assert (dmoe.model.name, dmoe.objective.name) == ("vit_seg_dmoe", "erm")
    fair = validate(with_method(load_raw("fundus2d_erm"), "fair_dro"))
    assert (fair.model.name, fair.objective.name, fair.select_rule) == ("vit_seg_dmoe", "fair_dro", "worst_group")
    assert validate(with_method(raw, "fair_dro")).objective.args == {"within": "kl", "tau": 1.0, "across": "size"}
    moe_args = apply_overrides(load_raw("fundus2d_dmoe"), ["model.args.moe_kwargs={num_experts: 2}"])
    assert "moe_kwargs" not in validate(with_method(moe_args, "group_dro")).model.args
    with pytest.raises(DuetfairError, match="--method: 'best' is not one of"):
        with_method(raw, "best")
    with pytest.raises(DuetfairError, match="needs a backbone with MoE variants"):
        validate(with_method(apply_overrides(raw, ["model.name=unet"]), "moe"))
    sub = validate(with_method(raw, "subgroup_dro"))  # the DuetFair loss on the plain model
    assert (sub.model.name, sub.objective.name, sub.objective.args["within"]) == ("vit_seg", "fair_dro", "kl")
    with pytest.raises(DuetfairError, match="method 'oracle' needs the planted subtype"):
        with_method(raw, "oracle")


def test_analysis_and_display_settings_do_not_change_the_hash() -> None:
    base = load_config("manifest_example")
    same = load_config(
        "manifest_example",
        ["data.hidden_column=morphology=irregular", "train.log_every_epoch=false", "train.progress=false"],
    )
    assert same.data.hidden_column == "morphology=irregular" and same.config_hash() == base.config_hash()
    assert load_config("manifest_example", ["seed=1"]).config_hash() != base.config_hash()
    with pytest.raises(DuetfairError, match="config data.hidden_column: hidden column '=x': expected COLUMN"):
        load_config("manifest_example", ["data.hidden_column==x"])


def test_the_synthetic_generator_version_is_part_of_the_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    from duetfair.data import synthetic

    before = {task: load_config(task).config_hash() for task in synthetic.TASKS}
    assert len(set(before.values())) == 3
    monkeypatch.setitem(synthetic.GENERATOR_VERSION, "lesion2d", synthetic.GENERATOR_VERSION["lesion2d"] + 1)
    after = {task: load_config(task).config_hash() for task in synthetic.TASKS}
    assert after["lesion2d"] != before["lesion2d"]  # a finished run of older cases is not reused
    assert after["fundus2d"] == before["fundus2d"] and after["tumor3d"] == before["tumor3d"]
    assert synthetic.GENERATOR_VERSION["fundus2d"] == 1  # version 1 adds nothing: older runs keep their hash


def test_hidden_column_reaches_only_the_manifest_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    from duetfair.engine import adapters

    seen = {}
    monkeypatch.setattr("duetfair.data.build_datasets", lambda kind, **kw: seen.update(kind=kind, **kw) or {})
    adapters.build_datasets("manifest", {"path": "m.csv"}, "morphology=irregular")
    assert seen["hidden_column"] == "morphology=irregular"
    seen.clear()
    adapters.build_datasets("synthetic", {"task": "fundus2d"}, "hidden_subtype")  # the synthetic data's own column
    assert "hidden_column" not in seen
    with pytest.raises(DuetfairError, match="only data.kind 'manifest' reads a hidden column by name"):
        adapters.build_datasets("fairseg", {"root": "x"}, "morphology")
    with pytest.raises(DuetfairError, match="differ; keep one"):
        adapters.build_datasets("manifest", {"path": "m.csv", "hidden_column": "a"}, "b")


def test_every_method_resolves_the_same_from_train_and_benchmark() -> None:
    """``duetfair train <task>_<method>`` and ``duetfair benchmark <task>.yaml --method <method>``
    give the same resolved config for every task and method (one recipe per method)."""
    from duetfair.engine.config import _task_configs, with_method
    from duetfair.engine.recipes import RECIPES
    from duetfair.options import Method

    for task in _task_configs():
        for method in (m for m in Method if m != Method.ORACLE):
            packaged = load_config(f"{task}_{method.value}").to_dict()
            switched = validate(with_method(load_raw(task), method.value)).to_dict()
            for d in (packaged, switched):
                d.pop("name"), d.pop("output_dir")
            assert packaged == switched, (task, method)
            recipe = RECIPES[method]
            assert packaged["objective"]["name"] == recipe.objective
            for key, value in recipe.objective_args.items():
                assert packaged["objective"]["args"][key] == value, (task, method, key)
            if recipe.balance_by:
                assert packaged["train"]["balance_by"] == recipe.balance_by


def test_benchmark_switch_applies_the_recipe_to_a_users_config(tmp_path: Path) -> None:
    """The bugs of two owners: GroupDRO without balanced batches, adversarial at 10x the weight."""
    from duetfair.engine.config import with_method

    own = tmp_path / "own.yaml"
    own.write_text("extends: fundus2d.yaml\nname: own\nobjective: {args: {}}\ntrain: {epochs: 3}\n")
    group_dro = validate(with_method(load_raw(own), "group_dro"))
    assert group_dro.train.balance_by == "groups" and group_dro.objective.args == {"step_size": 0.01}
    adversarial = validate(with_method(load_raw(own), "adversarial"))
    assert adversarial.objective.args["weight"] == 0.1 and adversarial.train.balance_by is None
    assert adversarial.train.epochs == 3  # the user's own settings are kept
    kept = validate(with_method(apply_overrides(load_raw(own), ["train.balance_by=race"]), "group_dro"))
    assert kept.train.balance_by == "race"  # a config's own value wins over the recipe
