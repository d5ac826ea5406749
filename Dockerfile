# syntax=docker/dockerfile:1
# The kitefn image without ko: a static binary on distroless/static, as non-root (uid 65532, which the
# deploy/ manifests set as runAsUser). One image per store leaves the other cloud SDKs out:
#   docker build --build-arg STORE=firestore -t REGISTRY/kitefn:firestore .
# STORE is bbolt, firestore, dynamodb, or all (every store linked).
ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION} AS build
ARG STORE=all
WORKDIR /src
COPY . .
# make build is what CI checks: CGO_ENABLED=0, -trimpath, the STORE's build tags.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    make build STORE=${STORE} BIN=/out/kitefn

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kitefn /kitefn
USER 65532:65532
ENTRYPOINT ["/kitefn"]
