# The two commands a newcomer needs: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo demo-up docs api-spec test test-fast explore flake-hunt image-test ui-test chaos receiver-load funnel fleet-pass bench histories release-wheel models clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# setuptools as the build backend wants it (pyproject.toml): tests/test_wheel_contents.py
	# builds the wheel offline with it (70.1 is the first that builds wheels on its own).
	$(PY) -m pip install --quiet --upgrade pip 'setuptools>=70.1'
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m demo

demo-up: $(STAMP)
	$(PY) -m demo --keep-running

# Hypothesis runs derandomized here (tests/hypothesis_profiles.py): a gate must not fail by chance.
test: $(STAMP)
	HYPOTHESIS_PROFILE=ci $(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# Random examples, ten times as many, for a long run before a release: keep what it finds as @example.
explore: $(STAMP)
	HYPOTHESIS_PROFILE=explore $(PY) -m pytest -q -p no:cacheprovider $(shell grep -l "from hypothesis" tests/test_*.py) $(PYTEST_ARGS)

# The image built and each of its commands started (tests/test_image.py): needs podman or docker.
# The documentation site, built into site/ (mkdocs.yml; `make test` builds it strictly too).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

image-test: $(STAMP)
	ONBOARDING_IMAGE_TEST=1 $(PY) -m pytest -q -p no:cacheprovider tests/test_image.py $(PYTEST_ARGS)

# The timing-sensitive modules RUNS times in a row (tests/flake_hunt.py), failures per module.
RUNS ?= 10
flake-hunt: $(STAMP)
	$(PY) -m tests.flake_hunt --runs $(RUNS)

# The Temporal UI in Debian's Chromium (/usr/bin/chromium; .ci/install-browser installs it as root).
ui-test: $(STAMP)
	$(PY) -m pytest -q -rs -p no:cacheprovider tests/test_ui_browser.py $(PYTEST_ARGS)
	@echo "screenshots in test-output/ui/"

chaos: $(STAMP)
	$(PY) -m bench.chaos --customers 100

receiver-load: $(STAMP)
	$(PY) -m bench.receiver_load --bursts 5 --customers 50 --per-customer 10

# A year of a partner's funnel on the time-skipping server: actions and Iron calls per customer-year.
funnel: $(STAMP)
	$(PY) -m bench.funnel

# One fleet pass over 100,000 sandbox customers, timed and its actions counted.
fleet-pass: $(STAMP)
	$(PY) -m bench.fleet_pass

bench: $(STAMP)
	$(PY) -m bench.benchmark

# Record the histories the replay tests replay: into tests/histories/unreleased/, or with
# RELEASE=<version> into that release's folder, once, when the release is cut.
histories: $(STAMP)
	RELEASE=$(RELEASE) $(PY) -m tests.record_histories

# The wheel of a release, built from its tag into tests/releases/ once, when the release is cut:
# tests/test_release_upgrade_devserver.py runs that code, and a clone may come without tags.
release-wheel: $(STAMP)
	@test -n "$(RELEASE)" || { echo "make release-wheel RELEASE=<version>" >&2; exit 2; }
	rm -rf build/release-$(RELEASE) && mkdir -p build/release-$(RELEASE)
	git archive v$(RELEASE) | tar -x -C build/release-$(RELEASE)
	$(PY) -m pip wheel --no-deps --no-build-isolation -q -w tests/releases build/release-$(RELEASE)
	rm -rf build/release-$(RELEASE)

# Iron's models, generated from the spec copy into iron_client/generated.py: run it after taking a
# new copy of iron_client/spec/openapi-onboarding.yml (a test fails while the two disagree).
models: $(STAMP)
	$(PY) -m iron_client.spec.generate

# The HTTP API's OpenAPI document, as the API serves it at /openapi.json, into
# onboarding_api/openapi.json: run it after changing the API (a test fails while the two differ).
api-spec: $(STAMP)
	$(PY) -m onboarding_api openapi --output onboarding_api/openapi.json

clean:
	rm -rf $(VENV) .data .demo .pytest_cache
