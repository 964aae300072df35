from __future__ import annotations

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from duetfair.data import build_datasets, collate_cases
from duetfair.data.synthetic import SyntheticData, generate, generator_version, group_spec, synthetic_task
from duetfair.errors import DuetfairError


def _dice(pred: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    dims = tuple(range(1, pred.ndim))
    return 2 * (pred & ref).sum(dims).float() / (pred.sum(dims) + ref.sum(dims)).clamp(min=1).float()


def test_shapes_classes_and_meta():
    for task, shape, k in (("fundus2d", (1, 32, 32), 3), ("lesion2d", (3, 32, 32), 2), ("tumor3d", (3, 16, 16, 16), 2)):
        d = generate(task, 5, seed=1, image_size=shape[-1])
        assert d.images.shape == (5, *shape) and d.images.dtype == torch.float32
        assert d.labels.shape == (5, 1, *shape[1:]) and d.labels.dtype == torch.int64
        assert set(torch.unique(d.labels).tolist()) <= set(range(k))
        assert torch.isfinite(d.images).all()
        assert list(d.meta.columns)[0] == "case_id" and "hidden_subtype" in d.meta.columns
        assert (group_spec(task).encode_frame(d.meta) >= 0).all()


def test_deterministic_and_seed_dependent():
    a = generate("fundus2d", 20, seed=3, image_size=32)
    b = generate("fundus2d", 20, seed=3, image_size=32)
    c = generate("fundus2d", 20, seed=4, image_size=32)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    pd.testing.assert_frame_equal(a.meta, b.meta)
    assert not torch.equal(a.images, c.images)


def test_proportions_follow_parameters():
    d = generate("fundus2d", 1500, seed=0, image_size=16)
    share = d.meta["race"].value_counts(normalize=True)
    assert abs(share["Asian"] - 0.09) < 0.025 and abs(share["Black"] - 0.15) < 0.03
    hid = d.meta.groupby("race")["hidden_subtype"].mean()
    assert ((hid > 0.07) & (hid < 0.25)).all()  # the hidden subtype lives inside every group
    d2 = generate("fundus2d", 300, seed=0, image_size=16, hidden_prob=0.0, race_probs=(0.5, 0.5, 0.0))
    assert d2.meta["hidden_subtype"].sum() == 0 and set(d2.meta["race"]) == {"Asian", "Black"}


def test_bad_parameters_are_refused():
    with pytest.raises(DuetfairError, match="unknown parameters"):
        generate("fundus2d", 2, colour=1)
    with pytest.raises(DuetfairError, match="race_probs"):
        generate("fundus2d", 2, race_probs=(0.5, 0.5))
    with pytest.raises(DuetfairError, match="unknown synthetic task"):
        generate("xray", 2)
    with pytest.raises(DuetfairError, match="glare_radius"):
        generate("lesion2d", 2, glare_radius=(0.2, 0.1))
    with pytest.raises(DuetfairError, match="glare_prob"):
        generate("lesion2d", 2, glare_prob=1.5)
    with pytest.raises(DuetfairError, match="cyst_hidden_prob"):
        generate("tumor3d", 2, cyst_hidden_prob=-0.1)
    with pytest.raises(DuetfairError, match="cyst_core"):
        generate("tumor3d", 2, cyst_core=1.0)
    with pytest.raises(DuetfairError, match="cyst_radius"):
        generate("tumor3d", 2, cyst_radius=(0.0, 0.1))
    with pytest.raises(DuetfairError, match="hidden_prob"):
        generate("tumor3d", 2, hidden_prob=1.2)


def test_the_task_is_named_by_task_or_its_alias_kind():
    assert synthetic_task({}) == "fundus2d" and synthetic_task({"kind": "tumor3d"}) == "tumor3d"
    assert generator_version({"kind": "tumor3d"}) == generator_version({"task": "tumor3d"}) == 3
    with pytest.raises(DuetfairError, match="'task' or 'kind', not both"):
        synthetic_task({"task": "fundus2d", "kind": "lesion2d"})
    with pytest.raises(DuetfairError, match="not both"):
        build_datasets("synthetic", task="fundus2d", kind="fundus2d", n_train=2, n_val=0, n_test=0)


def _light_background(d: SyntheticData) -> torch.Tensor:
    """Per case ``[n]``: share of background pixels clearly lighter than the case's skin."""
    smooth = F.avg_pool2d(d.images.mean(1, keepdim=True), 3, stride=1, padding=1)[:, 0]
    skin = smooth.flatten(1).median(1).values[:, None, None]
    bg = d.labels[:, 0] == 0
    return ((smooth > skin + 0.12) & bg).flatten(1).sum(1) / bg.flatten(1).sum(1)


def test_lesion_glare_spots_are_light_background_of_the_typical_cases():
    """Glare never changes the label; it lightens background pixels of the cases it is drawn in."""
    kw = dict(seed=2, image_size=32, hidden_prob=0.3)
    plain = generate("lesion2d", 80, glare_prob=0.0, glare_hidden_prob=0.0, **kw)
    glare = generate("lesion2d", 80, glare_prob=1.0, glare_hidden_prob=0.0, **kw)
    assert torch.equal(plain.labels, glare.labels)
    hidden = torch.tensor(glare.meta["hidden_subtype"].tolist()) == 1
    light, before = _light_background(glare), _light_background(plain)
    assert light[~hidden].mean() > before[~hidden].mean() + 0.02
    assert light[hidden].mean() < before[hidden].mean() + 0.005  # the decoy lies in typical cases only


def test_tumor_cysts_enhance_in_the_background_of_the_typical_cases():
    """A cyst never changes the label; its wall enhances (post - pre contrast) in the background."""
    kw = dict(seed=3, image_size=24, hidden_prob=0.3, noise=(0.0, 0.0, 0.0, 0.0))
    plain = generate("tumor3d", 40, cyst_prob=0.0, cyst_hidden_prob=0.0, **kw)
    cyst = generate("tumor3d", 40, cyst_prob=1.0, cyst_hidden_prob=0.0, **kw)
    assert torch.equal(plain.labels, cyst.labels)
    hidden = torch.tensor(cyst.meta["hidden_subtype"].tolist()) == 1

    def enhancing_background(d: SyntheticData) -> torch.Tensor:
        gain = d.images[:, -1] - d.images[:, 0]
        return ((gain > 0.8) & (d.labels[:, 0] == 0)).flatten(1).float().mean(1)

    with_cyst, without = enhancing_background(cyst), enhancing_background(plain)
    assert with_cyst[~hidden].mean() > without[~hidden].mean() + 0.003  # a wall: about 0.3 % of the volume
    assert with_cyst[hidden].mean() < without[hidden].mean() + 0.001


def test_fixed_threshold_scores_lower_on_minorities_and_much_lower_on_hidden():
    d = generate("fundus2d", 400, seed=0, image_size=48)
    smooth = F.avg_pool2d(d.images, 5, stride=1, padding=2)
    dice = _dice(smooth > 0.5, d.labels >= 1)  # disc = rim + cup
    m = d.meta.assign(dice=dice.numpy())
    visible = m[m["hidden_subtype"] == 0]
    by_race = visible.groupby("race")["dice"].mean()
    assert by_race["Asian"] < by_race["White"] - 0.1 and by_race["Black"] < by_race["White"] - 0.1
    by_hidden = m[m["race"] == "White"].groupby("hidden_subtype")["dice"].mean()
    assert by_hidden[1] < by_hidden[0] - 0.3


def test_tumor_stage_and_hidden_difficulty():
    d = generate("tumor3d", 120, seed=0, image_size=24, cyst_prob=0.0)  # the decoy fools the rule on typical cases
    smooth = F.avg_pool3d(d.images[:, -1:], 3, stride=1, padding=1)
    m = d.meta.assign(dice=_dice(smooth > 1.5, d.labels >= 1).numpy())
    by_stage = m[m["hidden_subtype"] == 0].groupby("stage")["dice"].mean()
    assert by_stage["T1"] < by_stage["T3"]
    by_hidden = m.groupby("hidden_subtype")["dice"].mean()
    assert by_hidden[1] < by_hidden[0] - 0.3


def test_build_datasets_in_memory_contract():
    ds = build_datasets("synthetic", task="fundus2d", n_train=12, n_val=4, n_test=6, image_size=32, seed=0)
    assert set(ds) == {"train", "val", "test"} and [len(ds[s]) for s in ("train", "val", "test")] == [12, 4, 6]
    tr = ds["train"]
    assert (tr.num_classes, tr.in_channels, tr.spatial_dims) == (3, 1, 2)
    assert tr.group_spec.attributes == ["race", "age", "sex"]
    case = tr[0]
    assert set(case) == {"image", "label", "case_id", "attrs", "codes", "hidden"}
    assert case["codes"].dtype == torch.long and case["codes"].shape == (3,)
    assert list(tr.meta.columns[:1]) == ["case_id"] and (tr.meta["split"] == "train").all()
    assert not set(tr.case_ids) & set(ds["test"].case_ids)
    # the test split does not change with n_train
    other = build_datasets("synthetic", kind="fundus2d", n_train=3, n_val=0, n_test=6, image_size=32, seed=0)
    assert torch.equal(other["test"][5]["image"], ds["test"][5]["image"]) and "val" not in other
    batch = collate_cases([tr[i] for i in range(4)])
    assert batch["image"].shape == (4, 1, 32, 32) and batch["codes"].shape == (4, 3) and batch["hidden"].shape == (4,)
    one = build_datasets(
        "synthetic", task="tumor3d", n_train=2, n_val=0, n_test=0, image_size=16, attributes=["institution"]
    )
    assert one["train"].group_spec.attributes == ["institution"] and one["train"][0]["image"].shape == (3, 16, 16, 16)


def test_planted_subtype_is_an_attribute_only_on_request():
    from duetfair.data.synthetic import group_spec, synthetic_datasets
    from duetfair.options import HIDDEN_COLUMN

    for task in ("fundus2d", "lesion2d", "tumor3d"):
        assert HIDDEN_COLUMN not in group_spec(task).attributes
    train = synthetic_datasets("lesion2d", n_train=64, n_val=0, n_test=0, attributes=["age", HIDDEN_COLUMN])["train"]
    assert train.group_spec.attributes == ["age", HIDDEN_COLUMN]
    assert train.codes[:, 1].tolist() == train.meta[HIDDEN_COLUMN].tolist()  # typical 0, hidden 1
