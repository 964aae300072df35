"""GroupDRO: hand-computed updates, absent / single / unknown groups, resume, balanced sampler."""

import math

import pytest
import torch

from duetfair.errors import DuetfairError
from duetfair.objectives.group_dro import GroupDRO, group_balanced_sampler, group_balanced_weights

L = torch.tensor([1.0, 3.0, 4.0], dtype=torch.float64)
G = torch.tensor([0, 0, 1])


def test_hand_computed_step():
    obj = GroupDRO(2, step_size=1.0)
    loss = obj(L, G)
    q = torch.tensor([math.exp(2), math.exp(4)]) / (math.exp(2) + math.exp(4))
    torch.testing.assert_close(obj.q, q.float())
    assert float(loss) == pytest.approx(float(q[0]) * 2 + float(q[1]) * 4, rel=1e-6)


def test_gradient_is_q_over_group_size():
    losses = L.clone().requires_grad_(True)
    obj = GroupDRO(2, step_size=1.0)
    obj(losses, G).backward()
    q = obj.q.double()
    torch.testing.assert_close(losses.grad, torch.stack([q[0] / 2, q[0] / 2, q[1]]))


def test_absent_group_decays_and_is_dropped_from_loss():
    obj = GroupDRO(3, step_size=1.0)
    loss = obj(L, G)
    e = [math.exp(2), math.exp(4), 1.0]
    q = [v / sum(e) for v in e]
    assert obj.q.tolist() == pytest.approx(q, rel=1e-6)
    assert float(loss) == pytest.approx(q[0] * 2 + q[1] * 4, rel=1e-6)
    renorm = GroupDRO(3, step_size=1.0, renormalize_present=True)
    assert float(renorm(L, G)) == pytest.approx((q[0] * 2 + q[1] * 4) / (q[0] + q[1]), rel=1e-6)


def test_single_group_batch():
    obj = GroupDRO(2, step_size=1.0, renormalize_present=True)
    loss = obj(L, torch.zeros(3, dtype=torch.long))
    assert float(loss) == pytest.approx(float(L.mean()), rel=1e-6)
    assert float(obj.q[0]) > float(obj.q[1])


def test_unknown_cases_keep_erm_weight_and_do_not_move_q():
    losses = torch.tensor([1.0, 3.0, 4.0, 10.0], dtype=torch.float64)
    group = torch.tensor([0, 0, 1, -1])
    obj = GroupDRO(2, step_size=1.0)
    loss = obj(losses, group)
    ref = GroupDRO(2, step_size=1.0)
    group_part = ref(L, G)
    torch.testing.assert_close(obj.q, ref.q)
    assert float(loss) == pytest.approx(0.75 * float(group_part) + 10.0 / 4, rel=1e-6)


def test_all_unknown_is_erm():
    losses = torch.tensor([1.0, 2.0, 6.0], dtype=torch.float64)
    obj = GroupDRO(2, step_size=1.0)
    assert float(obj(losses, torch.full((3,), -1))) == pytest.approx(3.0)
    assert obj.q.tolist() == pytest.approx([0.5, 0.5])


def test_adjustment_steers_q_but_not_loss_and_normalize():
    obj = GroupDRO(2, step_size=1.0, adjustment=2.0, group_counts=[4, 1])
    loss = obj(L, G)
    a = [2 + 2 / 2, 4 + 2 / 1]
    q = [math.exp(v) / (math.exp(a[0]) + math.exp(a[1])) for v in a]
    assert obj.q.tolist() == pytest.approx(q, rel=1e-6)
    assert float(loss) == pytest.approx(q[0] * 2 + q[1] * 4, rel=1e-6)
    norm = GroupDRO(2, step_size=1.0, normalize_loss=True)
    norm(L, G)
    q = [math.exp(v / 6) for v in (2, 4)]
    assert norm.q.tolist() == pytest.approx([v / sum(q) for v in q], rel=1e-6)
    with pytest.raises(DuetfairError, match="group_counts"):
        GroupDRO(2, adjustment=1.0)


def test_eval_mode_does_not_update_q():
    obj = GroupDRO(2, step_size=1.0).eval()
    obj(L, G)
    assert obj.q.tolist() == [0.5, 0.5]


def test_resume_is_exact():
    g = torch.Generator().manual_seed(0)
    batches = [(torch.rand(6, generator=g), torch.randint(-1, 3, (6,), generator=g)) for _ in range(6)]
    straight = GroupDRO(3, step_size=0.5)
    values = [float(straight(l, gr)) for l, gr in batches]
    first = GroupDRO(3, step_size=0.5)
    for l, gr in batches[:3]:
        first(l, gr)
    resumed = GroupDRO(3, step_size=0.5)
    resumed.load_state_dict(first.state_dict())
    assert [float(resumed(l, gr)) for l, gr in batches[3:]] == values[3:]
    assert resumed.log_values() == straight.log_values()


def test_group_ids_out_of_range_are_rejected():
    with pytest.raises(DuetfairError, match="group ids"):
        GroupDRO(2)(L, torch.tensor([0, 2, 1]))


def test_balanced_weights_and_sampler():
    groups = [0] * 6 + [1] * 2 + [-1] * 2
    w = group_balanced_weights(groups)
    assert w.tolist() == pytest.approx([10 / 6] * 6 + [5.0] * 2 + [5.0] * 2)
    assert group_balanced_weights(groups, unknown="drop")[-2:].tolist() == [0.0, 0.0]
    sampler = group_balanced_sampler(groups, num_samples=3000, generator=torch.Generator().manual_seed(0))
    drawn = torch.tensor(groups)[torch.tensor(list(sampler))]
    fractions = [float((drawn == k).float().mean()) for k in (0, 1, -1)]
    assert fractions == pytest.approx([1 / 3] * 3, abs=0.04)
    with pytest.raises(DuetfairError, match="unknown"):
        group_balanced_sampler([-1, -1], unknown="drop")
