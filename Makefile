# The two commands a newcomer needs: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo demo-up docs test test-fast explore flake-hunt image-test ui-test chaos receiver-load bench histories clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	# Bytecode for the sandbox, which imports each workflow module afresh (runtime/bytecode.py).
	$(PY) -m compileall -q workflows
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

bench: $(STAMP)
	$(PY) -m compileall -q workflows
	$(PY) -m bench.benchmark

histories: $(STAMP)
	$(PY) -m tests.record_histories

clean:
	rm -rf $(VENV) .data .demo .pytest_cache
