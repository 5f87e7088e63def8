# jettag: `make serve` serves the default models from models/; `make test` runs everything CI runs.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# The ONNX Runtime shared library comes from the onnxruntime wheel (ort uses load-dynamic).
# Looked up with the shell each time a recipe runs, not with $(wildcard): make caches directory
# listings, so on a fresh clone, where the venv is created by this same make run, $(wildcard)
# would still see no library and export an empty path.
ORT_DYLIB_PATH = $(shell ls -d $(abspath $(VENV))/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -n 1)
export ORT_DYLIB_PATH
# Larger test data (read in place, never copied); tests that need it skip with a message when absent.
JETTAG_DATA ?= $(abspath ../shared/data)
export JETTAG_DATA
CARGO ?= cargo

.PHONY: all build serve test venv fixtures bench check-cuda clean-venv

all: build

$(VENV)/.stamp: requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.stamp

# Regenerates the small committed ROOT fixtures (tests/fixtures/) from $(JETTAG_DATA), the
# std::vector<float> one (written with oxyroot), their uproot summaries, and the numpy reference
# for core/tests/reference.rs.
fixtures: venv
	$(PY) tests/fixtures/make_fixtures.py $(JETTAG_DATA)
	$(CARGO) run -p jettag-core --example write_vector_fixture
	$(PY) tests/fixtures/make_fixtures.py --summary $(JETTAG_DATA)
	$(PY) core/tests/reference/make_reference.py

build:
	$(CARGO) build --release --workspace

serve: venv
	$(CARGO) run --release -p jettag -- serve --models models

test: venv
	@test -n "$(ORT_DYLIB_PATH)" || { echo "no libonnxruntime.so in $(VENV) (pip install onnxruntime failed?)"; exit 1; }
	@echo "ORT_DYLIB_PATH=$(ORT_DYLIB_PATH)"
	@echo "JETTAG_DATA=$(JETTAG_DATA)"
	@# promtool (Debian package prometheus) checks the server's /metrics in tests/serve_e2e.rs.
	@command -v promtool >/dev/null || { echo "installing promtool (apt-get install prometheus)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus) >/dev/null 2>&1 \
		|| echo "WARNING: cannot install promtool; the promtool check of /metrics will be skipped"; }
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc
	$(PY) tests/deploy/validate.py

# Measures the server against in-process ONNX Runtime and a plain Python gRPC server on
# loopback and writes BENCHMARKS.md (about 10 minutes after the build; BENCH_ARGS=--quick for a
# short check run). See loadtest/bench.py.
BENCH_ARGS ?=
bench: venv
	$(CARGO) build --release -p jettag -p jettag-loadtest
	$(PY) loadtest/bench.py --jettag target/release/jettag --loadtest target/release/jettag-loadtest \
		--models models --out BENCHMARKS.md $(BENCH_ARGS)

# The GPU training build (burn-cuda) compiles without a GPU or CUDA toolkit; CI builds the CPU
# backend only, so check this one by hand when touching the training crate.
check-cuda:
	$(CARGO) check -p jettag-train --features cuda --bins

clean-venv:
	rm -rf $(VENV)
