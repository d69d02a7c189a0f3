"""The suite's hypothesis profiles: `make test` gates on the derandomized one, and every
property test's own example count follows the profile (tests/hypothesis_profiles.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import settings

from tests import hypothesis_profiles

TESTS = Path(__file__).resolve().parent
REPO_ROOT = TESTS.parent


def test_the_profile_in_force_is_the_one_the_environment_names():
    name = hypothesis_profiles.profile_name()
    assert settings.default.derandomize is (name == "ci")
    assert (settings.default.database is None) is (name == "ci")
    if name == "ci":
        assert settings.default.deadline is None  # a deadline measures the machine


def test_make_test_and_ci_run_the_derandomized_profile():
    makefile = (REPO_ROOT / "Makefile").read_text()
    recipe = re.search(r"^test: .*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe is not None
    assert "HYPOTHESIS_PROFILE=ci" in recipe.group(1)
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()


def test_explore_multiplies_each_tests_own_example_count(monkeypatch):
    monkeypatch.setenv(hypothesis_profiles.ENV_PROFILE, "explore")
    assert hypothesis_profiles.examples(40) == 40 * hypothesis_profiles.EXPLORE_FACTOR
    monkeypatch.setenv(hypothesis_profiles.ENV_PROFILE, "ci")
    assert hypothesis_profiles.examples(40) == 40
    monkeypatch.setenv(hypothesis_profiles.ENV_PROFILE, "surprise")
    with pytest.raises(ValueError, match="HYPOTHESIS_PROFILE must be one of ci, dev, explore"):
        hypothesis_profiles.examples(40)


def test_every_explicit_example_count_goes_through_the_profile():
    """A bare `max_examples=N` would pin the count under `explore` too."""
    bare = []
    for path in sorted(TESTS.glob("test_*.py")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if re.search(r"max_examples=\d", line):
                bare.append(f"{path.name}:{number}")
    assert bare == []
