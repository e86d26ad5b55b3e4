# Strongroom: the two commands that matter are `make run` and `make test`.
CARGO ?= cargo
FUZZ_SECONDS ?= 60

.PHONY: all build run test test-env lint fmt fuzz bench eif repro clean

all: build

build:
	$(CARGO) build --workspace

## The whole system in mock mode, in the foreground (Ctrl-C stops it). State in ./data.
run:
	bash scripts/run.sh

## Every test: unit, property, integration and interop tests (installs the test clients first).
test: test-env
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

test-env:
	@bash scripts/test-env.sh >/dev/null

## Formatting and clippy, warnings as errors.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

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
