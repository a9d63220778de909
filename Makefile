# mux-master-operator: the two commands a person needs are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

include tools/tools.mk
include tools/emulators.mk

.PHONY: help build lint test unit demo bench crd image test-image

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

build: ## build the operator and mux-sim
	$(CARGO) build --locked --workspace --bins

lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

test: tools test-image lint ## every test: lint, unit, and integration tests against real components
	$(CARGO) test --locked --workspace --lib --bins --tests -- --test-threads=$${TEST_THREADS:-4}

crd: ## regenerate crds/ (and the chart's copy) from the Rust types
	$(CARGO) run --quiet --locked --bin mux-master-operator -- crd > crds/masterexport.yaml
	cp crds/masterexport.yaml charts/mux-master-operator/crds/masterexport.yaml
	$(CARGO) run --quiet --locked --bin mux-master-operator -- crd --kind MasterExportSet > crds/masterexportset.yaml
	cp crds/masterexportset.yaml charts/mux-master-operator/crds/masterexportset.yaml

unit: ## the unit tests only (no external process)
	$(CARGO) test --locked --workspace --lib

bench: tools ## benchmarks: figures, ratios against a named peer, and how to reproduce them
	$(CARGO) bench --locked --bench copy
	$(CARGO) bench --locked --bench webhook_latency
	$(CARGO) bench --locked --bench scale
	$(CARGO) bench --locked --bench exportset

demo: tools test-image ## the operator's main job, end to end: its chart on a local node (played where none can run)
	$(CARGO) build --locked --workspace --bins --example demo
	$(CARGO) run --locked --quiet --example demo

# The operator's image (Dockerfile): a static binary on scratch. The binary is static glibc
# (static-pie; the musl target cannot be installed everywhere this builds), compiled for the
# build machine's architecture; `--target` keeps RUSTFLAGS off build scripts and proc macros.
# Built with docker, podman or buildah, whichever is found first (IMAGE_BUILDER overrides), and
# saved as an archive the test node imports (nothing is pulled there). buildah keeps its storage
# under target/image/; its push also writes a blob-info cache to /var/lib/containers whatever it
# is told, which is removed again when it was not there before: nothing outside the repository
# changes.
IMAGE_NAME ?= localhost/mux-master-operator
IMAGE_TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
IMAGE_DIR := target/image
IMAGE_ARCHIVE := $(IMAGE_DIR)/mux-master-operator-$(IMAGE_TAG).oci.tar
IMAGE_RUST_TARGET := $(shell uname -m)-unknown-linux-gnu
# docker counts only with a daemon that answers (a CLI alone cannot build); podman and buildah
# need none. (`podman info`/`buildah info` would create storage under /var/lib/containers.)
IMAGE_BUILDER ?= $(or $(if $(shell docker info >/dev/null 2>&1 && echo ok),docker),$(if $(shell command -v podman),podman),$(if $(shell command -v buildah),buildah))
BUILDAH := buildah --root $(CURDIR)/$(IMAGE_DIR)/buildah/root --runroot $(CURDIR)/$(IMAGE_DIR)/buildah/run --storage-driver vfs

image: ## the operator's image (static binary on scratch) with docker, podman or buildah; prints its size
	@test -n "$(IMAGE_BUILDER)" || { echo "image: no docker, podman or buildah found (make tools installs buildah as root)" >&2; exit 1; }
	@start=$$(date +%s); RUSTFLAGS='-C target-feature=+crt-static' $(CARGO) build --release --locked \
	  --target $(IMAGE_RUST_TARGET) --bin mux-master-operator && \
	  echo "image: built the static binary in $$(( $$(date +%s) - start ))s"
	@mkdir -p $(IMAGE_DIR)/rootfs $(IMAGE_DIR)/tmp
	@strip -o $(IMAGE_DIR)/rootfs/mux-master-operator target/$(IMAGE_RUST_TARGET)/release/mux-master-operator
	@cp /etc/ssl/certs/ca-certificates.crt $(IMAGE_DIR)/rootfs/ca-certificates.crt
	@start=$$(date +%s); set -e; rm -f $(IMAGE_ARCHIVE).partial; \
	case "$(IMAGE_BUILDER)" in \
	  buildah) export TMPDIR=$(CURDIR)/$(IMAGE_DIR)/tmp; \
	    test -e /var/lib/containers && had_cache=1 || had_cache=; \
	    $(BUILDAH) bud --quiet --isolation chroot -f Dockerfile -t $(IMAGE_NAME):$(IMAGE_TAG) . >/dev/null; \
	    $(BUILDAH) push --quiet $(IMAGE_NAME):$(IMAGE_TAG) oci-archive:$(IMAGE_ARCHIVE).partial:$(IMAGE_NAME):$(IMAGE_TAG); \
	    size=$$($(BUILDAH) images --format '{{.Size}}' $(IMAGE_NAME):$(IMAGE_TAG)); \
	    [ -n "$$had_cache" ] || rm -rf /var/lib/containers ;; \
	  podman) podman build --quiet -f Dockerfile -t $(IMAGE_NAME):$(IMAGE_TAG) . >/dev/null; \
	    podman save --quiet --format oci-archive -o $(IMAGE_ARCHIVE).partial $(IMAGE_NAME):$(IMAGE_TAG); \
	    size=$$(podman images --format '{{.Size}}' $(IMAGE_NAME):$(IMAGE_TAG)) ;; \
	  docker) docker build --quiet -f Dockerfile -t $(IMAGE_NAME):$(IMAGE_TAG) . >/dev/null; \
	    docker save -o $(IMAGE_ARCHIVE).partial $(IMAGE_NAME):$(IMAGE_TAG); \
	    size=$$(docker images --format '{{.Size}}' $(IMAGE_NAME):$(IMAGE_TAG)) ;; \
	  *) echo "image: unknown IMAGE_BUILDER $(IMAGE_BUILDER)" >&2; exit 1 ;; \
	esac; \
	mv $(IMAGE_ARCHIVE).partial $(IMAGE_ARCHIVE); \
	echo "image: $(IMAGE_NAME):$(IMAGE_TAG) with $(IMAGE_BUILDER) in $$(( $$(date +%s) - start ))s: $$size (archive $(IMAGE_ARCHIVE), $$(du -h $(IMAGE_ARCHIVE) | cut -f1))"

# `make test` builds the image its real-node tests run; with no builder (no root to install one),
# the tests play the node instead (they say so), so that is one line, not an error.
test-image:
	@if [ -n "$(IMAGE_BUILDER)" ]; then $(MAKE) --no-print-directory image; \
	else echo "image: no docker, podman or buildah: the tests will play the node"; fi
