# Strongroom: the two commands that matter are `make run` and `make test`.
CARGO ?= cargo
FUZZ_SECONDS ?= 60

.PHONY: all build run run-cluster test test-env eif-tool lint fmt fuzz bench eif repro clean

all: build

build:
	$(CARGO) build --workspace

## The whole system in mock mode, in the foreground (Ctrl-C stops it). State in ./data.
run:
	bash scripts/run.sh

## One deployment as three replicas over PostgreSQL behind HAProxy, in mock mode (Ctrl-C
## stops it). One URL: http://127.0.0.1:8080. State in ./data-cluster.
run-cluster:
	bash scripts/run-cluster.sh

## Every test: unit, property, integration and interop tests (installs the test clients first).
# `build --all-targets` makes the plain binaries the end-to-end tests run (the proxy has no
# tests of its own to make `cargo test` build it) with the same features as the tests, so
# `cargo test` reuses every artefact instead of building the workspace a second time.
# The hostile-parent suite runs on its own, with its output shown: it prints how many
# attacks ran and how many the enclave refused.
test: test-env eif-tool
	$(CARGO) build --workspace --all-targets
	$(CARGO) test --workspace --all-targets -- --skip hostile_parent
	$(CARGO) test --workspace --test hostile_parent -- --nocapture
	$(CARGO) test --workspace --doc
	$(CARGO) test $(EIF_TOOL_ARGS)

## strongroom-eif, which measures and builds enclave images for `strongroom measure`. A
## workspace of its own (AWS's EIF crate brings OpenSSL, the AWS SDK and exact pins), built
## into the main target directory so the crates both share are built once.
EIF_TOOL_TARGET_DIR = $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),$(CURDIR)/target)
EIF_TOOL_ARGS = --locked --manifest-path eif-build/measure/Cargo.toml --target-dir $(EIF_TOOL_TARGET_DIR)
eif-tool:
	@bash scripts/test-env.sh --system
	$(CARGO) build $(EIF_TOOL_ARGS)

test-env:
	@bash scripts/test-env.sh >/dev/null

## Formatting and clippy, warnings as errors.
lint:
	@bash scripts/test-env.sh --system
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) fmt --manifest-path eif-build/measure/Cargo.toml --all -- --check
	$(CARGO) clippy $(EIF_TOOL_ARGS) --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all
	$(CARGO) fmt --manifest-path eif-build/measure/Cargo.toml --all

## Every fuzz target for FUZZ_SECONDS each; prints executions and findings per target.
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh

## End-to-end signing benchmark against raw secp256k1 signing, measured in the same run.
BENCH_ARGS ?=
bench:
	bash scripts/bench.sh $(BENCH_ARGS)

## The production Enclave Image File (needs Docker and nitro-cli; says what is missing).
eif:
	bash eif-build/build.sh

## Builds the production enclave binary twice from clean trees; fails unless identical.
repro:
	bash eif-build/repro.sh

clean:
	$(CARGO) clean
