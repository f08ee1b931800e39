# Two commands on a fresh clone: `make run` (the local penguin pipeline) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kubeline-installed
OUTPUT_DIR ?= runs/latest

.PHONY: run test compile bench clean

$(STAMP): setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/kubeline run --local --output-dir $(OUTPUT_DIR)

test: $(STAMP)
	$(BIN)/python -m pytest tests -q

compile: $(STAMP)
	$(BIN)/kubeline compile

bench: $(STAMP)
	$(BIN)/python benchmarks/local_run.py

clean:
	rm -rf $(VENV) runs build *.egg-info
