# Set-up and everyday commands. Everything runs in a virtualenv (.venv by
# default) so a fresh machine needs only python3 >= 3.11 and Go (for the test
# control plane); pip's cache makes re-installs of torch cheap.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: install install-test system-deps quickstart test test-fast lint bench control-plane voice-servers images images-test clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

install: $(PY)
	$(PIP) install --quiet -e '.[piper]'

install-test: $(PY)
	$(PIP) install --quiet -e '.[test]'

## The local fleet quickstart: starts it, writes hello.wav of real speech, stops it.
quickstart: install
	VENV=$(VENV) bash scripts/quickstart.sh

## System packages the tests run for real: redis-server (Debian's), installed only when missing.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
system-deps:
	@command -v redis-server >/dev/null || { $(SUDO) apt-get update && $(SUDO) apt-get install -y redis-server; }

## The whole test suite: unit, real gRPC, real voice, real control plane, the images in podman.
test: install-test control-plane voice-servers system-deps images
	$(PY) -m pytest

## Only what needs neither the control plane nor containers.
test-fast: install-test voice-servers system-deps
	$(PY) -m pytest -m "not integration and not containers"

control-plane:
	bash tests/cluster/build.sh

## The servers voice sources are fetched from in tests (a registry, an S3 server), from Go modules.
voice-servers:
	bash tests/voice_sources/build.sh

## The images, with podman and no registry (base cached under ~/.cache/ttsfleet/images).
images:
	bash docker/images.sh

## The images' smoke test: the operator's and the chart's pod specs run as containers.
images-test: install-test control-plane system-deps images
	$(PY) -m pytest -m containers

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: install-test
	for b in tests/bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) hello.wav
