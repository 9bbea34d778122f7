# The two commands that matter: `make demo` and `make test`.
CARGO ?= cargo
STEPS := read-bootstrap write-vault mark-consumed

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
	$(CARGO) test --workspace --locked

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
