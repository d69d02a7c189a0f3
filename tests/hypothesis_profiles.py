"""Hypothesis profiles: deterministic where the suite gates a change, exploring where it doesn't.

    HYPOTHESIS_PROFILE=ci       derandomized, no example database, no deadline: the same examples
                                on every run and every machine (`make test` and `.ci/run` use it)
    HYPOTHESIS_PROFILE=dev      random, with the local example database (the default for a person)
    HYPOTHESIS_PROFILE=explore  random and ten times the examples, for a long run before a release
                                (`make explore`)

A failure any profile finds is kept as an `@example` on its test, so the deterministic run
checks it from then on, on a clean clone too (the example database is not committed).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

ENV_PROFILE = "HYPOTHESIS_PROFILE"
PROFILES = ("ci", "dev", "explore")
DEFAULT_PROFILE = "dev"
EXPLORE_FACTOR = 10

# No deadline and no too-slow check in `ci`: both measure the machine's speed, which is chance.
settings.register_profile(
    "ci", derandomize=True, database=None, print_blob=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", print_blob=True)
settings.register_profile("explore", print_blob=True, max_examples=100 * EXPLORE_FACTOR)


def profile_name() -> str:
    name = os.environ.get(ENV_PROFILE, "").strip() or DEFAULT_PROFILE
    if name not in PROFILES:
        raise ValueError(f"{ENV_PROFILE} must be one of {', '.join(PROFILES)}, got {name[:40]!r}")
    return name


def load() -> str:
    """Loads the profile the environment names, and returns its name."""
    name = profile_name()
    settings.load_profile(name)
    return name


def examples(count: int) -> int:
    """A test's own example count (chosen for its speed), scaled up under `explore`: an explicit
    `max_examples` on a test would otherwise override the profile's."""
    return count * EXPLORE_FACTOR if profile_name() == "explore" else count


def describe(name: str) -> str:
    """The profile in force, for the test header."""
    what = {
        "ci": "derandomized, no example database, no deadline",
        "dev": "random, local example database",
        "explore": f"random, {EXPLORE_FACTOR}x examples",
    }[name]
    return f"hypothesis profile: {name} ({what}; set {ENV_PROFILE}=ci|dev|explore)"
