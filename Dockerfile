# The nftproxy image: a static binary on a distroless base.
#
#   docker build --build-arg VERSION=v0.1.0 --build-arg COMMIT=$(git rev-parse HEAD) -t nftproxy .
#
# hack/dockerfile_test.go checks that every COPY source exists and runs this
# file's go build, so keep the build in one RUN line.

# The builder runs on the build machine's platform and cross-compiles for
# the target's: no emulation is needed for a multi-platform build.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
# Set by BuildKit from --platform.
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
ARG COMMIT=unknown
WORKDIR /src

# Modules first, in their own layer, so that a change to the source alone
# does not download them again.
COPY go.mod go.sum ./
RUN go mod download

# The Go source of the binary. A new top-level package directory needs a
# line here; the Dockerfile test fails until it has one.
COPY *.go ./
COPY applier/ applier/
COPY commands/ commands/
COPY config/ config/
COPY conntrack/ conntrack/
COPY controllers/ controllers/
COPY explain/ explain/
COPY health/ health/
COPY healthcheck/ healthcheck/
COPY internal/ internal/
COPY kubeproxy/ kubeproxy/
COPY loader/ loader/
COPY metrics/ metrics/
COPY proxy/ proxy/
COPY rules/ rules/

RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath -ldflags "-s -w -X github.com/nftproxy/nftproxy/internal/version.Version=${VERSION} -X github.com/nftproxy/nftproxy/internal/version.Commit=${COMMIT}" -o /out/nftproxy .

# Not the :nonroot variant: programming nftables needs root with NET_ADMIN
# (the chart grants that capability and drops every other).
FROM gcr.io/distroless/static-debian12
LABEL org.opencontainers.image.title="nftproxy" \
      org.opencontainers.image.description="A Kubernetes Service proxy built on nftables" \
      org.opencontainers.image.source="https://github.com/nftproxy/nftproxy"
COPY --from=build /out/nftproxy /nftproxy
ENTRYPOINT ["/nftproxy"]
CMD ["run"]
