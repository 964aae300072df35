"""FairDRO (DuetFair loss): composite weights, reductions to ERM-by-group, unknowns, state."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from duetfair.errors import DuetfairError
from duetfair.objectives.fair_dro import FairDRO, fair_dro_weights, within_group_weights


def _mean_of_group_means(losses, group):
    return torch.stack([losses[group == g].mean() for g in torch.unique(group) if g >= 0]).mean()


@pytest.fixture
def random_batch():
    g = torch.Generator().manual_seed(0)
    return torch.rand(11, generator=g, dtype=torch.float64), torch.tensor([0, 0, 1, 2, 2, 2, 0, 1, 2, 0, 0])


@pytest.mark.parametrize("options", [dict(within="cvar", alpha=1.0), dict(within="kl", tau=1e12), dict(within="mean")])
def test_reduces_to_erm_by_group(random_batch, options):
    losses, group = random_batch
    loss = FairDRO(4, across="uniform", **options)(losses, group)
    torch.testing.assert_close(loss, _mean_of_group_means(losses, group), rtol=1e-9, atol=1e-12)


def test_size_weighted_alpha_one_is_erm(random_batch):
    losses, group = random_batch
    torch.testing.assert_close(FairDRO(3, within="cvar", alpha=1.0, across="size")(losses, group), losses.mean())


def test_cvar_hand_example():
    losses = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], dtype=torch.float64)
    group = torch.tensor([0, 0, 0, 1, 1, 1])
    w = fair_dro_weights(losses, group, 2, within="cvar", alpha=0.5)  # k = ceil(1.5) = 2 per group
    torch.testing.assert_close(w, torch.tensor([0, 0.25, 0.25, 0, 0.25, 0.25], dtype=torch.float64))
    assert float(FairDRO(2, within="cvar", alpha=0.5, across="uniform")(losses, group)) == pytest.approx(4.0)


def test_cvar_ties_share_mass_order_free():
    losses = torch.tensor([2.0, 1.0, 2.0, 2.0], dtype=torch.float64)
    group = torch.zeros(4, dtype=torch.long)
    w = within_group_weights(losses, group, 1, within="cvar", alpha=0.5)
    torch.testing.assert_close(w, torch.tensor([1 / 3, 0, 1 / 3, 1 / 3], dtype=torch.float64))


def test_kl_hand_example():
    losses = torch.tensor([0.0, math.log(3.0), 5.0], dtype=torch.float64)
    group = torch.tensor([0, 0, 1])
    w = fair_dro_weights(losses, group, 2, within="kl", tau=1.0, across="uniform")
    torch.testing.assert_close(w, torch.tensor([0.125, 0.375, 0.5], dtype=torch.float64))


def test_default_is_kl_tau_one_size_weighted():
    losses = torch.tensor([0.0, math.log(3.0), 5.0], dtype=torch.float64)
    group = torch.tensor([0, 0, 1])
    # group 0: softmax -> 1/4, 3/4 of its size share 2/3; group 1: its one case, share 1/3
    expected = torch.tensor([1 / 6, 1 / 2, 1 / 3], dtype=torch.float64)
    torch.testing.assert_close(fair_dro_weights(losses, group, 2), expected)
    assert float(FairDRO(2)(losses, group)) == pytest.approx(float((expected * losses).sum()))


def test_size_across_weights():
    losses = torch.tensor([1.0, 2.0, 3.0, 7.0], dtype=torch.float64)
    group = torch.tensor([0, 0, 0, 1])
    w = fair_dro_weights(losses, group, 2, within="mean", across="size")
    torch.testing.assert_close(w, torch.full((4,), 0.25, dtype=torch.float64))


def test_unknown_cases_get_erm_weight():
    losses = torch.tensor([1.0, 2.0, 3.0, 9.0], dtype=torch.float64)
    group = torch.tensor([0, 0, 1, -1])
    w = fair_dro_weights(losses, group, 2, within="cvar", alpha=0.5, across="uniform")
    # known share 3/4: group 0 -> worst 1 of 2, group 1 -> its one case; uniform 1/2 each
    torch.testing.assert_close(w, torch.tensor([0, 0.375, 0.375, 0.25], dtype=torch.float64))
    only_unknown = fair_dro_weights(losses, torch.full((4,), -1), 2)
    torch.testing.assert_close(only_unknown, torch.full((4,), 0.25, dtype=torch.float64))


def test_absent_and_single_group(random_batch):
    losses, _ = random_batch
    single = torch.zeros_like(losses, dtype=torch.long)
    w = fair_dro_weights(losses, single, 5, within="cvar", alpha=0.3)
    assert float(w.sum()) == pytest.approx(1.0)
    k = math.ceil(0.3 * losses.numel())
    assert int((w > 0).sum()) == k
    assert float(losses[w > 0].min()) >= float(losses[w == 0].max())


def test_gradient_equals_weights(random_batch):
    losses, group = random_batch
    losses = losses.clone().requires_grad_(True)
    FairDRO(3, within="kl", tau=0.3)(losses, group).backward()
    torch.testing.assert_close(losses.grad, fair_dro_weights(losses, group, 3, within="kl", tau=0.3))


def test_dro_across_updates_q_and_resume(random_batch):
    losses, group = random_batch
    obj = FairDRO(3, within="cvar", across="dro", step_size=1.0, alpha=1.0)
    obj(losses, group)
    means = torch.stack([losses[group == g].mean() for g in range(3)]).float()
    q = torch.exp(means) / torch.exp(means).sum()
    torch.testing.assert_close(obj.q, q)
    resumed = FairDRO(3, within="cvar", across="dro", step_size=1.0, alpha=1.0)
    resumed.load_state_dict(obj.state_dict())
    assert float(resumed(losses, group)) == float(obj(losses, group))
    assert "q_0" in obj.log_values() and "group_value_2" in obj.log_values()
    frozen = FairDRO(3, across="dro", step_size=1.0).eval()
    frozen(losses, group)
    assert frozen.q.tolist() == pytest.approx([1 / 3] * 3)


@pytest.mark.parametrize("bad", [dict(within="top"), dict(across="max"), dict(alpha=0.0), dict(alpha=1.5), dict(tau=0)])
def test_bad_options_rejected(bad):
    with pytest.raises(DuetfairError, match="fair_dro"):
        FairDRO(2, **bad)


@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(st.tuples(st.floats(0, 10), st.integers(-1, 3)), min_size=1, max_size=20),
    within=st.sampled_from(["cvar", "kl", "mean"]),
    across=st.sampled_from(["uniform", "size", "dro"]),
    alpha=st.floats(0.05, 1.0),
)
def test_weights_are_a_distribution_and_robust_value_dominates_mean(data, within, across, alpha):
    losses = torch.tensor([d[0] for d in data], dtype=torch.float64)
    group = torch.tensor([d[1] for d in data])
    q = torch.full((4,), 0.25, dtype=torch.float64)
    w = fair_dro_weights(losses, group, 4, within=within, alpha=alpha, tau=0.7, across=across, q=q)
    assert bool((w >= 0).all()) and float(w.sum()) == pytest.approx(1.0)
    inside = within_group_weights(losses, group, 4, within=within, alpha=alpha, tau=0.7)
    for g in group[group >= 0].unique():
        members = group == g
        assert float(inside[members].sum()) == pytest.approx(1.0)
        # a robust aggregate is never below the group mean
        assert float((inside[members] * losses[members]).sum()) >= float(losses[members].mean()) - 1e-9


def test_within_group_weight_concentration_is_logged_per_group():
    """ess_g = (sum w)^2 / (n_g sum w^2): 1 for the plain mean, alpha for CVaR_alpha, tiny for a sharp tilt."""
    from duetfair.objectives.fair_dro import FairDRO

    losses = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    group = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    for kwargs, want in (
        (dict(within="mean"), 1.0),
        (dict(within="cvar", alpha=0.5), 0.5),
        (dict(within="kl", tau=1e-3), 0.25),
    ):
        obj = FairDRO(2, across="size", **kwargs).train()
        obj(losses, group)
        obj(losses, group)
        logged = obj.log_values()
        assert logged["ess_0"] == pytest.approx(want, rel=1e-4) and logged["ess_1"] == pytest.approx(want, rel=1e-4)
        assert math.isnan(obj.log_values()["ess_0"])  # reset after each call: one value per epoch
    tilted = FairDRO(2, within="kl", tau=1.0).train()
    tilted(losses, group)
    assert 0.9 < tilted.log_values()["ess_0"] < 1.0  # the default's tilt is mild at these loss scales


def _fractional_cvar(values: torch.Tensor, alpha: float) -> float:
    """Mean of the worst ``alpha`` fraction of ``values`` (fractional last case)."""
    v = values.sort(descending=True).values
    k = alpha * v.numel()
    full = int(math.floor(k))
    partial = (k - full) * float(v[full]) if full < v.numel() else 0.0
    return (float(v[:full].sum()) + partial) / k


def test_dual_cvar_starts_at_the_group_cvar_and_steps_its_thresholds():
    torch.manual_seed(0)
    objective = FairDRO(2, within="dual_cvar", alpha=0.5, across="uniform")
    losses = torch.rand(9, requires_grad=True)
    group = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, -1])
    loss = objective(losses, group)
    loss.backward()
    values = objective.log_values()
    # eta_g starts at the group's median, where eta + E[(l - eta)_+] / alpha is the group's CVaR_0.5
    for g, part in ((0, losses[:4].detach()), (1, losses[4:8].detach())):
        assert values[f"group_value_{g}"] == pytest.approx(_fractional_cvar(part, 0.5), abs=1e-6)
        median = float(part.sort().values[1:3].mean())
        # half of the group above the threshold: the dual gradient 1 - p / alpha is 0, eta stays
        assert values[f"eta_{g}"] == pytest.approx(median, abs=1e-6)
    expected = 8 / 9 * 0.5 * (values["group_value_0"] + values["group_value_1"]) + float(losses[8].detach()) / 9
    assert float(loss.detach()) == pytest.approx(expected, abs=1e-6)
    # only the cases above their group's threshold (and the unknown case) get a gradient
    above = torch.cat([losses[:4] > objective.eta[0], losses[4:8] > objective.eta[1]])
    assert torch.equal(losses.grad[:8] > 0, above) and losses.grad[8] == pytest.approx(1 / 9)
    assert values["ess_0"] == pytest.approx(0.5)  # the share of the group above its threshold


def test_dual_cvar_threshold_follows_the_quantile_as_losses_fall():
    torch.manual_seed(1)
    objective = FairDRO(1, within="dual_cvar", alpha=0.2, across="size")
    zeros = torch.zeros(16, dtype=torch.long)
    for scale in (1.0, 0.3):  # the model improves: every loss shrinks
        for _ in range(400):
            objective(scale * torch.rand(16), zeros)
        assert float(objective.eta[0]) == pytest.approx(0.8 * scale, abs=0.08 * scale)
    objective.eval()
    before = objective.eta.clone()
    objective(torch.rand(16), zeros)
    assert torch.equal(objective.eta, before)  # evaluation does not move the threshold


def test_dual_cvar_has_no_in_batch_weights():
    with pytest.raises(DuetfairError, match="dual_cvar"):
        within_group_weights(torch.rand(4), torch.zeros(4, dtype=torch.long), 1, within="dual_cvar")
