// Package agent runs the nftproxy agent end to end: a real kube-apiserver
// and etcd on loopback, nftproxy as a process programming a node network
// namespace, and real connections from pod namespaces to Services created
// through the API. It needs root and the binaries of
// hack/build-control-plane.sh.
package agent
