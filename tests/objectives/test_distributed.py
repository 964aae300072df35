"""DDP correctness: 2 gloo CPU processes == one process on the concatenated batch (to 1e-6)."""

import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from duetfair.objectives.distributed import all_gather_cat, group_sums, is_distributed, mean_over_ranks, world_size

sys.path.insert(0, str(Path(__file__).parent))
import _ddp_scenario as scenario  # noqa: E402


def test_helpers_are_noops_without_process_group():
    assert not is_distributed() and world_size() == 1
    sums, counts = group_sums(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([0, -1, 0]), 2)
    assert sums.tolist() == [5.0, 0.0] and counts.tolist() == [2.0, 0.0]
    gathered, offset = all_gather_cat(torch.tensor([3, 1]))
    assert gathered.tolist() == [3, 1] and offset == 0
    assert mean_over_ranks(torch.tensor(2.5)) == 2.5


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available in this build")
    tmp = tmp_path_factory.mktemp("ddp")
    ctx = mp.start_processes(
        scenario.worker, args=(2, str(tmp / "init"), str(tmp)), nprocs=2, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + 300
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.terminate()
            pytest.fail("DDP workers did not finish within 300 s")
    ranks = [torch.load(tmp / f"rank{r}.pt", weights_only=True) for r in range(2)]
    single = {key: scenario.run(key, slice(0, scenario.N), distributed=False) for key in scenario.CONFIGS}
    return ranks, single


@pytest.mark.parametrize("key", list(scenario.CONFIGS))
def test_two_ranks_match_one_process(ddp_results, key):
    ranks, single = ddp_results
    r0, r1, ref = ranks[0][key], ranks[1][key], single[key]
    for name in ref["state"]:
        torch.testing.assert_close(r0["state"][name], r1["state"][name], rtol=0, atol=0)
        torch.testing.assert_close(r0["state"][name], ref["state"][name], rtol=0, atol=1e-6)
    for s in range(scenario.STEPS):
        assert (r0["losses"][s] + r1["losses"][s]) / 2 == pytest.approx(ref["losses"][s], abs=1e-6)
        for g0, g1, g in zip(r0["grads"][s], r1["grads"][s], ref["grads"][s]):
            torch.testing.assert_close(g0, g1, rtol=0, atol=1e-12)
            torch.testing.assert_close(g0, g, rtol=0, atol=1e-6)
    for p0, p in zip(r0["params"], ref["params"]):
        torch.testing.assert_close(p0, p, rtol=0, atol=1e-6)
