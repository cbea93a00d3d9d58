# Multi-stage build: static binaries (CGO off, -trimpath), distroless, non-root.
# The image carries every command under cmd/ in /usr/local/bin: the worker runs by default; the
# CLI (vidm-sync) and the simulator (vidm-sim) are there for --entrypoint.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/...

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER nonroot:nonroot
ENV LOG_FORMAT=json
ENTRYPOINT ["/usr/local/bin/vidm-sync-worker"]
