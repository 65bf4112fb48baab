"""Hypothesis profiles of the property tests, and their example counts."""

from __future__ import annotations

import os

from hypothesis import settings

# Hypothesis profiles (property tests, tests/test_properties_*.py): "ci", the default, draws the
# same examples on every run (derandomize) and keeps no example database, so CI is reproducible
# and the suite stays fast; HYPOTHESIS_PROFILE=dev draws 5x as many, new ones each run, and keeps
# the failures it finds in .hypothesis/ to replay them first next time.
settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
EXAMPLE_SCALE = {"ci": 1, "dev": 5}


def examples(n: int) -> int:
    """A property test's example count: ``n`` under the "ci" profile, more under "dev"."""
    return n * EXAMPLE_SCALE.get(os.environ.get("HYPOTHESIS_PROFILE", "ci"), 1)
