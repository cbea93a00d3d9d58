# Multi-stage build: static binaries (CGO off, -trimpath), distroless, non-root.
# The image carries every command under cmd/ in /usr/local/bin: the worker runs by default; the
# CLI (vidm-sync) and the simulator (vidm-sim) are there for --entrypoint.
# deploy/dockerfile_test.go checks this file against the repository (stages, paths, ports).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/...

FROM gcr.io/distroless/static-debian12:nonroot
# Set by the build (docker build --build-arg VERSION=… --build-arg REVISION=$(git rev-parse HEAD)).
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="vidm-sync-worker" \
      org.opencontainers.image.description="Coalesces directory-sync triggers from NATS JetStream into vIDM directory syncs and publishes their results" \
      org.opencontainers.image.source="https://github.com/vidm-sync-worker/vidm-sync-worker" \
      org.opencontainers.image.documentation="https://github.com/vidm-sync-worker/vidm-sync-worker/blob/main/deploy/README.md" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=build /out/ /usr/local/bin/
USER nonroot:nonroot
ENV LOG_FORMAT=json
# 9090: ADMIN_ADDR (/metrics, /healthz, /readyz, status page, admin API);
# 8080: INGRESS_ADDR (POST /events, with INGRESS_ENABLED=true).
EXPOSE 9090 8080
# distroless has no curl: the worker probes its own /healthz (on ADMIN_ADDR's port).
# Kubernetes ignores this and uses the probes in deploy/kubernetes/deployment.yaml.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/vidm-sync-worker", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/vidm-sync-worker"]
