// Package e2e holds nftproxy's end-to-end suites, each a package of its
// own. These are started by framework.Main:
//
//   - agent: the agent against a real API server, programming a node
//     namespace, with real connections to Services created through the API;
//   - dataplane: rules built in Go and programmed with the applier, and
//     real packets through them, without an API server;
//   - reliability: what happens when things go wrong (a kill in the middle
//     of a sync, hostile input, endpoint churn under load, least privilege).
//
// They need root, a kernel with nf_tables and the tools that
// hack/install-deps.sh installs; without them they fail, never skip. Under
// go test -short they do not run at all. Their Services, EndpointSlices
// and Nodes come from rules/rulestest.
//
// cluster tests nftproxy as users run it, on the node that make cluster
// brings up; it needs that cluster rather than root, and has a TestMain of
// its own.
package e2e
