# The one place where the versions of the real components are pinned.
#
# Read by tools/tools.mk (which builds them into .tools/<component>-<version>/) and, at compile
# time, by crates/testenv (which looks for them there). The wrapper modules under tools/ must agree:
# after changing KUBE_VERSION or ETCD_VERSION, run tools/update-modules.sh.

# kube-apiserver: k8s.io/kubernetes at a release covered by k8s-openapi's `v1_35` feature; every
# k8s.io/* staging module is replaced by its published twin, v0.<minor>.<patch>.
KUBE_VERSION := v1.35.4
KUBE_STAGING_VERSION := v0.35.4

# etcd: the 3.6 line, which kube-apiserver 1.35 is built and tested against.
ETCD_VERSION := v3.6.16

# MinIO publishes no semver tags on the Go proxy: a pseudo-version pins a commit.
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c

# Helm 3: the latest v3 release on the module proxy.
HELM_VERSION := v3.22.0

# The object-store emulators for gs:// and az:// (tools/emulators.mk): fake-gcs-server, as a library
# under our XML-API wrapper (tools/gcs-emulator/go.mod pins it), and Azurite from npm
# (tools/azurite/package-lock.json pins it and its dependencies).
FAKE_GCS_VERSION := v1.56.1
AZURITE_VERSION := 3.37.0

# The pod sandbox image the test node runs (tools/pause/): bump when its sources change.
PAUSE_VERSION := 1
