"""A package of mistakes outside the lab, found by the same `discover` the lab uses (tests)."""
