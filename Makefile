# mux-master-operator: the two commands a person needs are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

include tools/tools.mk
include tools/emulators.mk

.PHONY: help build lint test unit demo bench crd

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

build: ## build the operator and mux-sim
	$(CARGO) build --locked --workspace --bins

lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

test: tools lint ## every test: lint, unit, and integration tests against real components
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

demo: tools ## the operator's main job, end to end, on a local control plane
	$(CARGO) build --locked --workspace --bins --example demo
	$(CARGO) run --locked --quiet --example demo
