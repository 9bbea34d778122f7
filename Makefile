# The two commands that matter: `make demo` and `make test`.
CARGO ?= cargo
SHELL := /bin/bash
STEPS := read-bootstrap write-vault mark-consumed rotate push-secret

.PHONY: all build bins test fmt fmt-check lint unit demo clean

all: build

## build: release binaries of every step
build:
	$(CARGO) build --release --locked $(addprefix -p ,$(STEPS))

## bins: debug binaries the end-to-end tests run as processes
bins:
	$(CARGO) build --locked --bins --workspace

## test: formatting, lints and every test (unit, emulator, end-to-end)
test: fmt-check lint bins
	set -o pipefail; $(CARGO) test --workspace --locked 2>&1 | tee target/test.log
	@awk '/^test result:/ { p += $$4; f += $$6 } END { print "tests: " p " passed, " f " failed" }' target/test.log

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## demo: build, start loopback servers, hand over seeded Secrets, show both sides, stop
demo: bins
	$(CARGO) run --locked -q -p e2e --bin demo

clean:
	$(CARGO) clean
