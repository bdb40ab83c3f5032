// Package dataplane holds kernel tests that send real packets through
// nftproxy's rules. Each test builds Services and EndpointSlices with
// rules/rulestest, turns them into a ruleset with rules.Build, programs it
// with the applier into the node namespace of its own netnstest topology,
// and connects from the client pod, the node itself or an off-cluster
// namespace. The echo servers answer with their name and the source
// address they saw, so a test checks both which endpoints got the traffic
// and whether it was masqueraded.
//
// The tests need root and a kernel with nf_tables. They never touch the
// host's ruleset, routes or addresses, and never send traffic outside
// their own namespaces.
package dataplane
