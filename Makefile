# Two commands on a fresh clone: `make run` (the local penguin pipeline) and `make test` (the whole suite).
# Every install takes its exact versions from constraints.txt (the lock); `make lock` regenerates it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LOCK := constraints.txt
STAMP := $(VENV)/.kubeline-installed
OUTPUT_DIR ?= runs/latest

.PHONY: run test lint compile bench lock fresh-check clean docs images push-images pin-images crds

# Reinstalls whenever setup.py or the lock changes: pip moves every package to its locked version.
$(STAMP): setup.py $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c $(LOCK) pip setuptools wheel
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[all,dev]'
	# promtool (tests/test_alerting.py) from Debian's prometheus as root; its service is stopped, only promtool is used
	command -v promtool >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null && \
		{ service prometheus stop >/dev/null 2>&1; true; }; } || echo 'promtool is missing: apt-get install prometheus'
	# Alertmanager and amtool (tests/test_rollback.py) and the Pushgateway (tests/test_drift.py) from Debian's
	# prometheus-alertmanager and prometheus-pushgateway, the same way
	{ command -v prometheus-alertmanager && command -v prometheus-pushgateway; } >/dev/null || \
		{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-alertmanager \
		prometheus-pushgateway >/dev/null && { service prometheus-alertmanager stop >/dev/null 2>&1; \
		service prometheus-pushgateway stop >/dev/null 2>&1; true; }; } || \
		echo 'missing: apt-get install prometheus-alertmanager prometheus-pushgateway'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/kubeline run --local --output-dir $(OUTPUT_DIR)

test: crds $(STAMP)
	$(BIN)/python -m pytest tests -q

# The upstream API schemas the tests validate against (KServe, Katib, prometheus-operator CRDs at the releases the
# docs name), pinned by URL and sha256 in .ci/crds: from ../shared/crds or $$KUBELINE_CRDS_SOURCE when there is one,
# else downloaded. Kept in .crds/.
crds:
	$(PYTHON) .ci/crds

lint: $(STAMP)
	$(BIN)/ruff check .

compile: $(STAMP)
	$(BIN)/kubeline compile

bench: $(STAMP)
	$(BIN)/python benchmarks/local_run.py

# A new dependency: make lock (current pins kept). A deliberate upgrade: make lock UPGRADE=1 && make compile &&
# make test, then commit the lock and compiled YAML together.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	UPGRADE=$(UPGRADE) $(BIN)/python .ci/lock

# The README's two commands on a fresh clone of HEAD, with no virtualenv or pip cache reused.
fresh-check:
	.ci/fresh-check

# docs/reference.md from the pipelines' and components' docstrings (tests/test_docs.py fails when it is stale).
docs: $(STAMP)
	$(BIN)/python -m kubeline.pipelines.reference

# Container images tagged with the package version and the commit (.ci/images): make images [REGISTRY=...]
# [DRY_RUN=1] builds them; make push-images builds and pushes both tags; make pin-images pins the base images by
# digest (docker buildx). DRY_RUN=1 prints the docker commands instead of running them.
IMAGE_OPTIONS = $(if $(REGISTRY),--registry $(REGISTRY)) $(if $(DRY_RUN),--dry-run)

images:
	$(PYTHON) .ci/images build $(IMAGE_OPTIONS)

push-images:
	$(PYTHON) .ci/images push $(IMAGE_OPTIONS)

pin-images:
	$(PYTHON) .ci/images pin $(if $(DRY_RUN),--dry-run)

clean:
	rm -rf $(VENV) runs build *.egg-info .crds
