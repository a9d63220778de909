# `make tools`: builds, from Go modules, the real components the integration tests and the demo
# run against (kube-apiserver, etcd, MinIO, Helm, kubectl) into .tools/<component>-<version>/, and
# the Python venv with the chart's offline schema validator and a Lua runtime into .tools/venv/.
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
tools: $(CONTROL_PLANE) $(MINIO) $(HELM) $(KUBECTL) $(VENV_STAMP) ## build (or find) kube-apiserver, etcd, MinIO, Helm, kubectl; the Python venv
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
