# Quick start:  make run   (installs what is missing, trains DCCS on the embedded digits and opens the explorer)
#               make test  (installs what is missing, runs the test suite; make test-fast: the quick tier)
#               make notebook (JupyterLab on notebooks/)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUN_ARGS ?=

.PHONY: install browser run test test-fast notebook clean-runs

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -c constraints.txt -e '.[test]'
	@touch $(STAMP)

# Chromium for the browser tests (Debian's package; Playwright's own download does not work everywhere)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: chromium is not installed and cannot be installed here; the browser tests will skip"; fi; }

run: $(STAMP)
	$(BIN)/python -m explorer --train digits --kmeans-baseline $(RUN_ARGS)

# the full suite: two pinned pytest-xdist workers, then the tests that need every core alone (tests/run_suite.sh);
# TEST_WORKERS=1 or PYTEST_ARGS="..." runs one plain pytest process
test: $(STAMP) browser
	PYTHON=$(BIN)/python bash tests/run_suite.sh $(PYTEST_ARGS)

# the edit-run loop: no training longer than a few seconds, no browser, no notebooks; its tests are short and
# mostly wait on one core, so FAST_WORKERS processes (pytest-xdist) share them and the cores (tests/conftest.py)
FAST_WORKERS ?= 2
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not browser and not notebook" -n $(FAST_WORKERS) $(PYTEST_ARGS)

# JupyterLab on the notebooks, on 127.0.0.1 (installs the jupyter extra the first time)
notebook: $(STAMP)
	@$(BIN)/python -c "import jupyterlab" 2>/dev/null || $(BIN)/python -m pip install -c constraints.txt -e '.[test,jupyter]'
	$(BIN)/python -m jupyter lab --ip 127.0.0.1 --notebook-dir notebooks $$([ "$$(id -u)" = 0 ] && echo --allow-root)

clean-runs:
	rm -rf runs
