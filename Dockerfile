# The operator's image: one static binary on `scratch`, with the CA certificates (it reaches
# api.mux.com and object stores over TLS against the system roots) and nothing else: no shell,
# no package manager, no libc. It runs both the controller (`run`, the chart's default) and the
# copy Jobs' program (`copy`). The tests run this very image on their node.
#
# The binary is built beforehand, not in the image (no base image can be pulled where the tests
# run): `make image` builds it (static glibc, `-C target-feature=+crt-static`), stages it with
# the CA bundle in target/image/rootfs/, and builds this file with docker, podman or buildah,
# whichever is there:
#
#   make image                                   # -> localhost/mux-master-operator:<version>
#   docker tag localhost/mux-master-operator:0.1.0 registry.example.com/mux-master-operator:0.1.0
#
# The build context is the repository; .dockerignore lets in target/image/rootfs/ only.

FROM scratch
LABEL org.opencontainers.image.title="mux-master-operator" \
      org.opencontainers.image.description="Keeps the masters of Mux videos downloadable, fresh and archived" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY target/image/rootfs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY target/image/rootfs/mux-master-operator /usr/local/bin/mux-master-operator
# Numeric, so that Kubernetes can check runAsNonRoot without reading /etc/passwd.
USER 65532:65532
# /metrics, /healthz, /readyz; and the Mux webhook endpoint when WEBHOOK_ADDR is set.
EXPOSE 8080 8443
ENTRYPOINT ["/usr/local/bin/mux-master-operator"]
CMD ["run"]
