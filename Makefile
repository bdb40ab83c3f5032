# One entry point for each task. Most need root: they create network
# namespaces and program nftables.
.PHONY: demo test unit build image lint control-plane tools bench chart manifest docs clean cluster cluster-down cluster-status conformance

BIN := _output/bin

## demo: run nftproxy end to end on this machine (API server, namespaces, packets)
demo:
	bash hack/demo.sh

## test: install what the tests need and run every test
test:
	bash hack/test.sh

## unit: the tests that need neither root, a kernel nor built binaries, in seconds
unit:
	go test -short ./...

## cluster: a real Kubernetes cluster on this machine with nftproxy as its only proxy (NODES=N)
cluster:
	bash hack/cluster/cluster.sh up

## cluster-down: stop the cluster and remove every trace of it
cluster-down:
	bash hack/cluster/cluster.sh down

cluster-status:
	bash hack/cluster/cluster.sh status

## conformance: Kubernetes' sig-network Service tests, with kube-proxy as the baseline, then nftproxy
conformance:
	bash hack/cluster/conformance.sh all

## build: the nftproxy binary in _output/bin
# -buildvcs=auto records the commit for `nftproxy version` even where GOFLAGS
# turns it off. Where git cannot read the checkout (no checkout, or one
# that git refuses as owned by another user), Go would refuse to build
# with it: the binary is built without the commit instead.
BUILDVCS := $(shell git rev-parse HEAD >/dev/null 2>&1 && echo auto || echo false)
build:
	CGO_ENABLED=0 go build -trimpath -buildvcs=$(BUILDVCS) -o $(BIN)/nftproxy .

## image: the container image as an archive in _output/images, without Docker (TAG=... to choose the tag)
image:
	bash hack/image.sh

## lint: go vet and gofmt
lint:
	go vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)

## control-plane: build kube-apiserver, etcd, kubectl and kube-proxy into _output/bin
control-plane:
	bash hack/build-control-plane.sh

## tools: install helm into _output/bin
tools:
	bash hack/install-tools.sh

## bench: the benchmarks of the rules engine and the scale benchmark against kube-proxy
bench:
	bash hack/bench.sh

## chart: lint the Helm chart and regenerate deploy/nftproxy.yaml and its README
chart: tools
	$(BIN)/helm lint --strict charts/nftproxy
	bash hack/gen-manifest.sh
	go run ./charts/gen > charts/nftproxy/README.md

## manifest: regenerate deploy/nftproxy.yaml from the chart
manifest: tools
	bash hack/gen-manifest.sh

## docs: regenerate the configuration and metrics references and the chart's README
docs:
	go run ./config/gen > docs/configuration.md
	go run ./metrics/gen > docs/metrics.md
	go run ./charts/gen > charts/nftproxy/README.md

clean:
	rm -rf _output
