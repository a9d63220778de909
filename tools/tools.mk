# `make tools`: builds, from Go modules, the real components the integration tests and the demo
# run against (kube-apiserver, etcd, MinIO, Helm, kubectl, and the node's kubelet,
# kube-controller-manager, kube-scheduler) into .tools/<component>-<version>/, and the Python venv
# with the chart's offline schema validator and a Lua runtime into .tools/venv/. For the real node
# it also installs containerd, runc and buildah from the distribution when they are missing and it
# can (root, apt-get), and builds the pod sandbox ("pause") image; when it cannot, it says so in
# one line and the tests fall back to the played node (crates/testenv/src/kubelet.rs).
#
# Each binary is a file target keyed by its version, so a second run with everything present
# builds nothing. When KUBEBUILDER_ASSETS is set (the layout setup-envtest makes), kube-apiserver
# and etcd are taken from there instead of being built. Versions live in tools/versions.mk.

include tools/versions.mk

TOOLS_DIR := $(CURDIR)/.tools
GO ?= go
# Static binaries, built the same whatever GOFLAGS or go.work the caller has; the wrapper modules
# build exactly what their go.mod/go.sum say (-mod=readonly).
GO_ENV := CGO_ENABLED=0 GOWORK=off GOFLAGS=
GO_FLAGS := -trimpath -buildvcs=false

KUBE_APISERVER := $(TOOLS_DIR)/kube-apiserver-$(KUBE_VERSION)/kube-apiserver
ETCD := $(TOOLS_DIR)/etcd-$(ETCD_VERSION)/etcd
MINIO := $(TOOLS_DIR)/minio-$(MINIO_VERSION)/minio
HELM := $(TOOLS_DIR)/helm-$(HELM_VERSION)/helm
KUBECTL := $(TOOLS_DIR)/kubectl-$(KUBE_VERSION)/kubectl
KUBELET := $(TOOLS_DIR)/kubelet-$(KUBE_VERSION)/kubelet
KUBE_CONTROLLER_MANAGER := $(TOOLS_DIR)/kube-controller-manager-$(KUBE_VERSION)/kube-controller-manager
KUBE_SCHEDULER := $(TOOLS_DIR)/kube-scheduler-$(KUBE_VERSION)/kube-scheduler
NODE_BINARIES := $(KUBELET) $(KUBE_CONTROLLER_MANAGER) $(KUBE_SCHEDULER)
# The pod sandbox image, an OCI archive the test node imports (nothing can be pulled here).
PAUSE_IMAGE := $(TOOLS_DIR)/pause-$(PAUSE_VERSION)/pause.oci.tar
# The venv is keyed by its requirements file: a stamp inside it records which one it was built
# from, so a change of a pinned version rebuilds it, and a second run does nothing.
VENV := $(TOOLS_DIR)/venv
VENV_REQUIREMENTS := tools/python/requirements.txt
VENV_STAMP := $(VENV)/.requirements-$(shell cksum < $(VENV_REQUIREMENTS) | cut -d' ' -f1)
PYTHON ?= python3

# kube-apiserver reports its version from these variables (it is set by the Kubernetes release
# build the same way); without them /version says v0.0.0-master.
KUBE_MINOR := $(word 2,$(subst ., ,$(KUBE_VERSION)))
KUBE_VERSION_PKGS := k8s.io/component-base/version k8s.io/client-go/pkg/version
KUBE_LDFLAGS := -s -w $(foreach p,$(KUBE_VERSION_PKGS),-X $(p).gitVersion=$(KUBE_VERSION) \
	-X $(p).gitMajor=1 -X $(p).gitMinor=$(KUBE_MINOR) -X $(p).gitTreeState=clean)

ifdef KUBEBUILDER_ASSETS
CONTROL_PLANE :=
else
CONTROL_PLANE := $(KUBE_APISERVER) $(ETCD)
endif

.PHONY: tools
tools: $(CONTROL_PLANE) $(MINIO) $(HELM) $(KUBECTL) $(VENV_STAMP) $(NODE_BINARIES) node-runtime ## build (or find) kube-apiserver, etcd, MinIO, Helm, kubectl, the node's parts; the Python venv
ifdef KUBEBUILDER_ASSETS
	@for b in kube-apiserver etcd; do \
	  test -x "$(KUBEBUILDER_ASSETS)/$$b" || { echo "KUBEBUILDER_ASSETS=$(KUBEBUILDER_ASSETS) has no $$b" >&2; exit 1; }; \
	  echo "tools: $$b from KUBEBUILDER_ASSETS: $(KUBEBUILDER_ASSETS)/$$b"; done
else
	@echo "tools: kube-apiserver $(KUBE_VERSION): $(KUBE_APISERVER)"
	@echo "tools: etcd $(ETCD_VERSION): $(ETCD)"
endif
	@echo "tools: minio $(MINIO_VERSION): $(MINIO)"
	@echo "tools: helm $(HELM_VERSION): $(HELM)"
	@echo "tools: kubectl $(KUBE_VERSION): $(KUBECTL)"
	@echo "tools: python venv (kubernetes-validate, lupa): $(VENV)"
	@echo "tools: kubelet, kube-controller-manager, kube-scheduler $(KUBE_VERSION): $(dir $(KUBELET)) and siblings"

# Each recipe builds into a temporary name and renames it last, so that an interrupted build never
# leaves a binary that a later run would take as present.

$(KUBE_APISERVER):
	@grep -qE '^\s*k8s.io/kubernetes $(KUBE_VERSION)( |$$)' tools/kube-apiserver/go.mod && \
	  grep -qE '^\s*k8s.io/api => k8s.io/api $(KUBE_STAGING_VERSION)$$' tools/kube-apiserver/go.mod || \
	  { echo "tools/kube-apiserver/go.mod does not match tools/versions.mk: run tools/update-modules.sh" >&2; exit 1; }
	@echo "tools: building kube-apiserver $(KUBE_VERSION) (slow the first time: see tools/README.md)"
	@mkdir -p $(@D)
	@start=$$(date +%s); cd tools/kube-apiserver && $(GO_ENV) $(GO) build -mod=readonly $(GO_FLAGS) \
	  -ldflags='$(KUBE_LDFLAGS)' -o $@.partial k8s.io/kubernetes/cmd/kube-apiserver && \
	  mv $@.partial $@ && echo "tools: built $@ in $$(( $$(date +%s) - start ))s"

# kubectl: the same k8s.io/kubernetes release as the apiserver, from a wrapper module of its own
# (tools/kubectl) with the same replacements; it shares the apiserver's module and build caches,
# so it costs little once the apiserver is built. Tests and the demo use it for what a user types:
# `kubectl apply -k`, `kubectl get mexp`, server-side dry runs.
$(KUBECTL):
	@grep -qE '^\s*k8s.io/kubernetes $(KUBE_VERSION)( |$$)' tools/kubectl/go.mod && \
	  grep -qE '^\s*k8s.io/api => k8s.io/api $(KUBE_STAGING_VERSION)$$' tools/kubectl/go.mod || \
	  { echo "tools/kubectl/go.mod does not match tools/versions.mk: run tools/update-modules.sh" >&2; exit 1; }
	@echo "tools: building kubectl $(KUBE_VERSION)"
	@mkdir -p $(@D)
	@start=$$(date +%s); cd tools/kubectl && $(GO_ENV) $(GO) build -mod=readonly $(GO_FLAGS) \
	  -ldflags='$(KUBE_LDFLAGS)' -o $@.partial k8s.io/kubernetes/cmd/kubectl && \
	  mv $@.partial $@ && echo "tools: built $@ in $$(( $$(date +%s) - start ))s"

$(ETCD):
	@grep -qE '(^|\s)go.etcd.io/etcd/server/v3 $(ETCD_VERSION)( |$$)' tools/etcd/go.mod || \
	  { echo "tools/etcd/go.mod does not match tools/versions.mk: run tools/update-modules.sh" >&2; exit 1; }
	@echo "tools: building etcd $(ETCD_VERSION)"
	@mkdir -p $(@D)
	@start=$$(date +%s); cd tools/etcd && $(GO_ENV) $(GO) build -mod=readonly $(GO_FLAGS) -ldflags='-s -w' \
	  -o $@.partial . && mv $@.partial $@ && echo "tools: built $@ in $$(( $$(date +%s) - start ))s"

# MinIO and Helm are main packages of their own modules, so `go install module@version` builds
# them with exactly the dependencies their releases declare (checked against sum.golang.org).
# go install cannot name its output file: it installs into a scratch GOBIN, then we move it.
define go-install
	@echo "tools: building $(2)"
	@rm -rf $(@D)/.gobin && mkdir -p $(@D)/.gobin
	@start=$$(date +%s); GOBIN=$(@D)/.gobin $(GO_ENV) $(GO) install $(GO_FLAGS) -ldflags='$(3)' $(2) && \
	  mv $(@D)/.gobin/$(@F) $@ && rmdir $(@D)/.gobin && echo "tools: built $@ in $$(( $$(date +%s) - start ))s"
endef

$(MINIO):
	$(call go-install,minio,github.com/minio/minio@$(MINIO_VERSION),-s -w)

$(HELM):
	$(call go-install,helm,helm.sh/helm/v3/cmd/helm@$(HELM_VERSION),-s -w -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION))

# The Python tools, pinned in tools/python/requirements.txt, from PyPI into a venv of the project's
# own (nothing is installed system-wide): kubernetes-validate checks `helm template` output against
# the Kubernetes schemas it ships, offline; lupa embeds a real Lua 5.4, which runs the Argo CD
# health check (deploy/argocd) against its test cases. A venv cannot be renamed (its scripts name
# its path), so the stamp, named after the requirements' checksum and written last, is what says
# "done": an interrupted install has none and is started again from scratch.
$(VENV_STAMP):
	@echo "tools: creating the Python venv $(VENV) from $(VENV_REQUIREMENTS)"
	@rm -rf $(VENV)
	@start=$$(date +%s); $(PYTHON) -m venv $(VENV) && \
	  $(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-input \
	    -r $(VENV_REQUIREMENTS) && \
	  touch $@ && echo "tools: built $(VENV) in $$(( $$(date +%s) - start ))s"

# kubelet, kube-controller-manager, kube-scheduler: the same k8s.io/kubernetes release as the
# apiserver, from one wrapper module (tools/kube-node) with the same replacements. They share the
# apiserver's module and build caches. Built one at a time (a Go build already uses every core).
define kube-node-binary
$(1):
	@grep -qE '^\s*k8s.io/kubernetes $$(KUBE_VERSION)( |$$$$)' tools/kube-node/go.mod && \
	  grep -qE '^\s*k8s.io/api => k8s.io/api $$(KUBE_STAGING_VERSION)$$$$' tools/kube-node/go.mod || \
	  { echo "tools/kube-node/go.mod does not match tools/versions.mk: run tools/update-modules.sh" >&2; exit 1; }
	@echo "tools: building $(2) $$(KUBE_VERSION)"
	@mkdir -p $$(@D)
	@start=$$$$(date +%s); cd tools/kube-node && $$(GO_ENV) $$(GO) build -mod=readonly $$(GO_FLAGS) \
	  -ldflags='$$(KUBE_LDFLAGS)' -o $$@.partial k8s.io/kubernetes/cmd/$(2) && \
	  mv $$@.partial $$@ && echo "tools: built $$@ in $$$$(( $$$$(date +%s) - start ))s"
endef
$(eval $(call kube-node-binary,$(KUBE_SCHEDULER),kube-scheduler))
$(eval $(call kube-node-binary,$(KUBE_CONTROLLER_MANAGER),kube-controller-manager))
$(eval $(call kube-node-binary,$(KUBELET),kubelet))

# The node's runtime comes from the distribution (Debian here): containerd and runc run the pods,
# buildah builds images without a daemon, the CNI plugins bring up each sandbox's loopback
# interface. Installed only when missing, only as root, only with apt-get;
# otherwise one line says why, and the tests run with the played node instead (not an error).
NODE_COMMANDS := containerd ctr runc buildah
NODE_PACKAGES := containerd runc buildah containernetworking-plugins
NODE_FILES := /usr/lib/cni/loopback

.PHONY: node-runtime
node-runtime:
	@missing=; for c in $(NODE_COMMANDS); do command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	for f in $(NODE_FILES); do test -e $$f || missing="$$missing $$f"; done; \
	if [ -z "$$missing" ]; then echo "tools: node runtime: $$(containerd --version | cut -d' ' -f3), runc $$(runc --version | sed -n 's/^runc version //p'), buildah $$(buildah --version | cut -d' ' -f3)"; \
	elif [ "$$(id -u)" != 0 ]; then echo "tools: the real node needs$$missing, which only root can install: tests will play the node"; \
	elif ! command -v apt-get >/dev/null; then echo "tools: the real node needs$$missing and there is no apt-get to install it: tests will play the node"; \
	else echo "tools: installing$$missing for the real node: apt-get install $(NODE_PACKAGES)"; \
	  start=$$(date +%s); \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(NODE_PACKAGES) >/dev/null && \
	  echo "tools: installed $(NODE_PACKAGES) in $$(( $$(date +%s) - start ))s" || \
	  echo "tools: apt-get could not install $(NODE_PACKAGES): tests will play the node"; fi
	@$(MAKE) -s --no-print-directory $(PAUSE_IMAGE)

# The pause image: a static C program that sleeps until killed (tools/pause/pause.c), on scratch,
# built with buildah into an OCI archive. Skipped with one line when there is no buildah or gcc.
# buildah's push writes a blob-info cache to /var/lib/containers whatever --root says: removed
# again when it was not there before.
PAUSE_IMAGE_NAME := localhost/mmo-pause:$(PAUSE_VERSION)
$(PAUSE_IMAGE): tools/pause/pause.c tools/pause/Containerfile
	@if ! command -v buildah >/dev/null || ! command -v gcc >/dev/null; then \
	  echo "tools: no buildah or gcc: no pause image, so no real node (tests will play it)"; exit 0; fi; \
	start=$$(date +%s); set -e; \
	test -e /var/lib/containers && had_cache=1 || had_cache=; \
	work=$$(mktemp -d); trap 'buildah --root "$$work/root" --runroot "$$work/run" --storage-driver vfs rmi -af >/dev/null 2>&1 || true; rm -rf "$$work"; [ -n "$$had_cache" ] || rm -rf /var/lib/containers' EXIT; \
	gcc -static -Os -s -o "$$work/pause" tools/pause/pause.c; \
	cp tools/pause/Containerfile "$$work/"; \
	buildah --root "$$work/root" --runroot "$$work/run" --storage-driver vfs bud --quiet --isolation chroot \
	  -t $(PAUSE_IMAGE_NAME) -f "$$work/Containerfile" "$$work" >/dev/null; \
	mkdir -p $(@D); \
	buildah --root "$$work/root" --runroot "$$work/run" --storage-driver vfs push --quiet \
	  $(PAUSE_IMAGE_NAME) oci-archive:$@.partial:$(PAUSE_IMAGE_NAME); \
	mv $@.partial $@; echo "tools: built $@ ($(PAUSE_IMAGE_NAME)) in $$(( $$(date +%s) - start ))s"
