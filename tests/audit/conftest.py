"""Shared fixtures of the audit tests: a small simulated per-case table."""

import pytest

from duetfair.audit.simulate import simulate_case_table


@pytest.fixture(scope="session")
def cases():
    return simulate_case_table(600, seed=1)
