# Quick start:  make run   (installs what is missing, trains DCCS on the embedded digits, prints ACC/NMI/ARI)
#               make test  (installs what is missing, runs the test suite)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUN_ARGS ?=

.PHONY: install run test clean-runs

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -c constraints.txt -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m core train --dataset digits --kmeans-baseline $(RUN_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean-runs:
	rm -rf runs
