"""Divergence-aware reweighting: weights by case id, >= 1, gradient kept, state, errors."""

import io

import pandas as pd
import pytest
import torch

from duetfair.errors import DuetfairError
from duetfair.objectives.divergence import DivergenceReweighting, divergence_weights


@pytest.fixture
def meta():
    return pd.DataFrame(
        {
            "case_id": ["a", "b", "c", "d", "e"],
            "age": ["0-40", "0-40", "41-50", "41-50", "71+"],
            "site": ["X", "Y", "X", "Y", "X"],
        }
    )


@pytest.fixture
def subgroups():
    return pd.DataFrame(
        {
            "itemset": [{"age": "0-40"}, {"age": "41-50", "site": "Y"}, {"site": "X"}, {"age": "71+"}, {}],
            "support": [0.4, 0.2, 0.6, 0.2, 1.0],
            "n": [2, 1, 3, 1, 5],
            "mean": [0.6, 0.5, 0.9, 0.7, 0.8],
            "divergence": [-0.2, -0.1, 0.1, -0.3, 0.0],
            "t": [3.0, 2.5, 4.0, 1.0, 0.0],
        }
    )


def test_weights_hand_example(meta, subgroups):
    w = divergence_weights(subgroups, meta, t_threshold=2.0)
    # used: age=0-40 (|div| .2) and age=41-50 & site=Y (.1); 71+ not significant; site=X over-performs
    assert w.to_dict() == pytest.approx({"a": 2.0, "b": 2.0, "c": 1.0, "d": 1.5, "e": 1.0})
    raw = divergence_weights(subgroups, meta, normalize=False, gain=1.0)
    assert raw["d"] == pytest.approx(1.1)
    assert (divergence_weights(subgroups, meta, t_threshold=0.5) >= 1).all()
    lower_better = divergence_weights(subgroups, meta, higher_is_better=False)
    assert lower_better.to_dict() == pytest.approx({"a": 2.0, "b": 1.0, "c": 2.0, "d": 1.0, "e": 2.0})


def test_max_over_overlapping_subgroups(meta):
    sub = pd.DataFrame({"itemset": [{"age": "0-40"}, {"site": "Y"}], "divergence": [-0.1, -0.4], "t": [5, 5]})
    w = divergence_weights(sub, meta)
    assert w["b"] == pytest.approx(2.0) and w["a"] == pytest.approx(1.25)


def test_loss_alignment_and_gradient(meta, subgroups):
    obj = DivergenceReweighting(alpha=0.2)
    obj.update(subgroups, meta)
    losses = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64, requires_grad=True)
    ids = ["d", "a", "c"]
    loss = obj(losses, torch.zeros(3, dtype=torch.long), case_ids=ids)
    w = torch.tensor([1.5, 2.0, 1.0], dtype=torch.float64)
    expected = 0.2 * losses.mean() + 0.8 * (w * losses).sum() / w.sum()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    # the weighted term keeps its gradient: d/dl_i = alpha/N + (1-alpha) w_i / sum w
    torch.testing.assert_close(losses.grad, 0.2 / 3 + 0.8 * w / w.sum())
    perm = [2, 0, 1]
    shuffled = obj(losses.detach()[perm], torch.zeros(3, dtype=torch.long), case_ids=[ids[i] for i in perm])
    torch.testing.assert_close(shuffled, expected.detach())


def test_before_update_and_unseen_ids_is_mean():
    obj = DivergenceReweighting()
    losses = torch.tensor([1.0, 2.0, 6.0])
    assert float(obj(losses, torch.zeros(3, dtype=torch.long), case_ids=["x", "y", "z"])) == pytest.approx(3.0)
    assert obj.log_values()["unmatched_case_ids"] == 3.0


def test_state_dict_roundtrip_weights_only(meta, subgroups):
    obj = DivergenceReweighting(alpha=0.5)
    obj.update(subgroups, meta)
    buf = io.BytesIO()
    torch.save(obj.state_dict(), buf)
    buf.seek(0)
    fresh = DivergenceReweighting(alpha=0.5)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    ids = list(meta["case_id"])
    torch.testing.assert_close(fresh.case_weights(ids), obj.case_weights(ids))
    assert fresh.log_values()["subgroups_used"] == 2.0


def test_bad_frames_rejected(meta, subgroups):
    with pytest.raises(DuetfairError, match="column"):
        divergence_weights(subgroups.drop(columns="t"), meta)
    with pytest.raises(DuetfairError, match="age"):
        divergence_weights(subgroups, meta.drop(columns="age"))
    with pytest.raises(DuetfairError, match="duplicate"):
        divergence_weights(subgroups, pd.concat([meta, meta.iloc[:1]]))
    with pytest.raises(DuetfairError, match="case_ids"):
        DivergenceReweighting()(torch.zeros(2), torch.zeros(2, dtype=torch.long), case_ids=["a"])


def test_with_divexplorer_mined_subgroups():
    divexplorer = pytest.importorskip("divexplorer")
    g = torch.Generator().manual_seed(0)
    n = 200
    age = ["old" if i % 4 == 0 else "young" for i in range(n)]
    site = ["A" if (i // 4) % 2 else "B" for i in range(n)]  # same share of "old" at both sites
    dice = [0.5 if a == "old" else 0.9 for a in age]
    dice = [d + 0.05 * float(torch.randn(1, generator=g)) for d in dice]
    frame = pd.DataFrame({"age": age, "site": site, "dice": dice})
    patterns = divexplorer.DivergenceExplorer(frame).get_pattern_divergence(
        min_support=0.1, quantitative_outcomes=["dice"]
    )
    sub = pd.DataFrame(
        {
            "itemset": [dict(item.split("=", 1) for item in s) for s in patterns["itemset"]],
            "divergence": patterns["dice_div"],
            "t": patterns["dice_t"],
        }
    )
    meta = frame.assign(case_id=[f"c{i}" for i in range(n)])
    w = divergence_weights(sub, meta)
    old = w[[a == "old" for a in age]]
    assert old.max() == 2.0 and (old > 1.9).all()
    assert (w[[a == "young" for a in age]] == 1.0).all()
