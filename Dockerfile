# syntax=docker/dockerfile:1
#
# The operator's image: one static binary (musl), on distroless/static as user 65532, with CA
# certificates (it reaches api.mux.com over TLS against the system roots) and nothing else: no
# shell, no package manager. It runs both the controller (`run`, the chart's default) and the copy
# Jobs' program (`copy`).
#
#   docker build -t mux-master-operator:0.1.0 .
#   helm install mux-master-operator charts/mux-master-operator \
#     --set image.repository=<your registry>/mux-master-operator --set image.tag=0.1.0
#
# Builds for the architecture of the build machine (amd64 or arm64).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
# musl-tools: the C toolchain for the static target (aws-lc-sys, the TLS crypto, is C code).
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools cmake \
 && rm -rf /var/lib/apt/lists/*
RUN rustup target add "$(uname -m)-unknown-linux-musl"
WORKDIR /src
# The manifests and the sources, nothing else (see .dockerignore): the workspace's crates (the
# operator builds only `mux` of them; cargo reads every member's manifest), and the demo, a
# declared example, whose file cargo needs to read the manifest.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crates ./crates
COPY demo ./demo
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    target="$(uname -m)-unknown-linux-musl" \
 && cargo build --release --locked --target "$target" --bin mux-master-operator \
 && cp "target/$target/release/mux-master-operator" /mux-master-operator

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="mux-master-operator" \
      org.opencontainers.image.description="Keeps the masters of Mux videos downloadable, fresh and archived" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /mux-master-operator /usr/local/bin/mux-master-operator
# Numeric, so that Kubernetes can check runAsNonRoot without reading /etc/passwd.
USER 65532:65532
# /metrics, /healthz, /readyz; and the Mux webhook endpoint when WEBHOOK_ADDR is set.
EXPOSE 8080 8443
ENTRYPOINT ["/usr/local/bin/mux-master-operator"]
CMD ["run"]
