# Multi-stage build: a static binary (CGO off, -trimpath), distroless, non-root.
# The image carries the worker only (its healthcheck is a subcommand of it): no simulator, chaos
# or bench tool, and no CLI; publishers run the CLI from its own build.
# Base images are pinned by digest, so a rebuild gets the same bytes; refresh them on purpose:
#   crane digest golang:1.26-bookworm
#   crane digest gcr.io/distroless/static-debian12:nonroot
# deploy/dockerfile_test.go checks this file against the repository (stages, paths, ports, pins).
FROM golang:1.26-bookworm@sha256:a688600ca24f8a4d3ca77f95b0dd40704a9fc787c826660eb7ba0b641b8b175d AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/vidm-sync-worker

FROM gcr.io/distroless/static-debian12:nonroot@sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab
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
