// Package netnstest builds throwaway network topologies in Linux network
// namespaces so that kernel tests can send real packets through real
// nftables rules without touching the host.
//
// A Topology is one "node" namespace routing between a "client" pod, N
// backend pods and, optionally, an "outside" client that is not part of the
// cluster. Every namespace name starts with a random prefix, so tests in
// different processes can build topologies at the same time. Echo servers
// (TCP, UDP, SCTP) answer with their name and the address they saw, and
// Dial and Tally send requests from any namespace.
//
// Everything here needs root. Nothing touches the host's ruleset, routes or
// addresses: links are created directly inside the namespaces.
package netnstest
