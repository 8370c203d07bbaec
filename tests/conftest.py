"""Shared test fixtures: an explicit, seeded random generator (no hidden global state)."""
import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
