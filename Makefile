# The two commands a newcomer needs: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo demo-up test test-fast ui-test chaos receiver-load bench histories clean

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

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

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
