"""Subclass DRO: clusters inside every group, GroupDRO over them, subclass-balanced draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from duetfair.errors import DuetfairError
from duetfair.objectives import build_objective
from duetfair.objectives.group_dro import GroupDRO
from duetfair.objectives.stage import FirstStageCases
from duetfair.objectives.subclass import cluster_within_groups
from first_stage_cases import context_of, planted_first_stage


def test_clusters_recover_separated_blobs_inside_every_group():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (30, 3)), rng.normal(8, 1, (10, 3)), rng.normal(0, 1, (20, 3))])
    groups = np.array([0] * 40 + [1] * 20)
    sub = cluster_within_groups(x, groups, clusters=2, min_size=5)
    assert set(sub[:30]) == {0} and set(sub[30:40]) == {1}  # numbered by size: the larger blob is c0
    assert set(sub[40:]) <= {2, 3} and len(set(sub[40:])) == 2


def test_small_groups_get_fewer_clusters_and_unknown_cases_none():
    x = np.arange(12, dtype=float)[:, None]
    groups = np.array([0] * 9 + [1] * 2 + [-1])
    sub = cluster_within_groups(x, groups, clusters=3, min_size=4)
    assert set(sub[:9]) == {0, 1}  # 9 // 4 = 2 clusters
    assert set(sub[9:11]) == {3} and sub[11] == -1


@pytest.mark.parametrize("space", ["features", "descriptors", "error"])
def test_every_feature_space_finds_the_planted_subtype(space):
    first, hard = planted_first_stage(hard_share=0.25)
    obj = build_objective("subclass_dro", context=context_of(first, 2), clusters=2, space=space, min_size=5)
    labels = obj.case_subgroups()["subgroup"].to_numpy()
    assert (labels[hard] == "c1").all() and (labels[~hard] == "c0").all()  # subtype = the smaller cluster


def test_loss_is_group_dro_over_the_subclasses_and_state_round_trips():
    first, hard = planted_first_stage(hard_share=0.25)
    obj = build_objective("subclass_dro", context=context_of(first, 2), clusters=2, step_size=0.5, min_size=5)
    ids = first.case_ids[:5] + first.case_ids[40:45]  # hard and typical cases of both groups
    losses = torch.linspace(0.1, 1.0, 10)
    sub = torch.as_tensor(
        [0 if not hard[i] else 1 for i in range(5)] + [2 if not hard[i] else 3 for i in range(40, 45)]
    )
    ref = GroupDRO(4, step_size=0.5, renormalize_present=True)
    for _ in range(3):
        assert torch.allclose(obj(losses, torch.zeros(10, dtype=torch.long), case_ids=ids), ref(losses, sub))
    again = build_objective("subclass_dro", context=context_of(first, 2), clusters=2, step_size=0.5, min_size=5)
    again.load_state_dict(obj.state_dict())
    assert torch.equal(again.dro.q, obj.dro.q)
    w = obj.sampling_weights(first.case_ids)
    counts = {s: float(w[(obj.subclass == s).numpy()].sum()) for s in range(4)}
    assert max(counts.values()) == pytest.approx(min(counts.values()))  # every subclass drawn equally often


def test_space_save_load_and_errors(tmp_path):
    first, _ = planted_first_stage()
    assert first.space("features", max_dims=4).shape == (80, 4)
    x = first.space("descriptors")
    assert x.shape == (80, 2) and np.allclose(x.mean(0), 0) and np.allclose(x.std(0), 1)
    first.save(tmp_path)
    back = FirstStageCases.load(tmp_path)
    assert back is not None and back.case_ids == first.case_ids and np.array_equal(back.features, first.features)
    assert FirstStageCases.load(tmp_path / "none") is None
    with pytest.raises(DuetfairError, match="space must be one of"):
        build_objective("subclass_dro", num_groups=2, space="pixels")
    obj = build_objective("subclass_dro", context=context_of(first, 2))
    with pytest.raises(DuetfairError, match="were not in the first stage"):
        obj(torch.ones(1), torch.zeros(1, dtype=torch.long), case_ids=["x"])
