"""Shared test setup: the hypothesis profiles, and the markers that skip when a tool is missing.

- `@needs_dot` (`from conftest import needs_dot`, or `@pytest.mark.needs_dot`): the test renders
  with Graphviz's `dot` and skips, saying so, where it is not installed.
- `@pytest.mark.torch`: the test uses PyTorch (the float64 oracle) and skips where it is missing.
- `@pytest.mark.slow`: a long test; `pytest -m "not slow"` leaves them out while working.

Hypothesis: the "ci" profile (chosen by `CI=1`, as `.ci/run` sets, or `HYPOTHESIS_PROFILE=ci`)
is derandomized, so a CI run is reproducible and a failure there fails again on rerun; the "dev"
profile (the default) explores new examples on every run. Neither has a deadline: timings on a
shared two-core machine vary too much for a per-example time limit to mean anything.
"""
from __future__ import annotations

import importlib.util
import os
import shutil

import pytest
from hypothesis import HealthCheck, settings

import strategies  # noqa: F401  (snapshots the built-in operations before any test defines one)

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE")
                      or ("ci" if os.environ.get("CI") else "dev"))

needs_dot = pytest.mark.needs_dot

HAVE_DOT = shutil.which("dot") is not None


def _have_torch() -> bool:
    """Whether `import torch` can work (without importing it: that takes seconds)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # sys.modules["torch"] = None (blocked) or a broken entry
        return False


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("needs_dot") and not HAVE_DOT:
        pytest.skip("Graphviz's dot is not installed (make test installs it with apt-get as root)")
    if item.get_closest_marker("torch") and not _have_torch():
        pytest.skip("PyTorch (the float64 oracle) is not installed: pip install torch==2.13.0")
