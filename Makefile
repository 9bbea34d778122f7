# The two commands that matter: `make demo` and `make test`.
CARGO ?= cargo
SHELL := /bin/bash
STEPS := read-bootstrap write-vault mark-consumed rotate push-secret init-authority unseal audit-authority
MUSL := x86_64-unknown-linux-musl
REGISTRY ?= ghcr.io/secops
TAG ?= 0.1.0
REVISION := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
BUILDAH ?= buildah --storage-driver vfs

.PHONY: all build images push bins test fmt fmt-check lint unit demo clean

all: build

## build: static (musl) release binaries of every step, with their sizes
##   needs: rustup target add x86_64-unknown-linux-musl; apt-get install musl-tools
build:
	SECOPS_GIT_REVISION=$(REVISION) $(CARGO) build --release --locked --target $(MUSL) $(addprefix -p ,$(STEPS))
	@for s in $(STEPS); do printf '%-16s %8d bytes\n' $$s $$(stat -c %s target/$(MUSL)/release/$$s); done

## images: one FROM-scratch image per step, tagged $(REGISTRY)/<step>:$(TAG) (needs buildah)
images: build
	@for s in $(STEPS); do \
	  $(BUILDAH) bud -q --build-arg VERSION=$(TAG) --build-arg REVISION=$(REVISION) \
	    -f images/$$s/Containerfile -t $(REGISTRY)/$$s:$(TAG) . >/dev/null || exit 1; \
	  printf '%-16s %s\n' $$s "$$($(BUILDAH) images --format '{{.Size}}' $(REGISTRY)/$$s:$(TAG))"; \
	done

## push: push the images (not run here: no registry is reachable)
push:
	@for s in $(STEPS); do $(BUILDAH) push $(REGISTRY)/$$s:$(TAG) || exit 1; done

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
