// Package reliability holds the tests of issue 6: what nftproxy does when
// things go wrong rather than right. A process killed in the middle of a
// sync must leave the kernel with the whole old ruleset or the whole new
// one; a ruleset built from hostile or broken objects must still commit,
// and hostile strings fed through `nftproxy apply` must create nothing but
// the named Service's own chains, sets and elements;
// connections must survive a stream of endpoint changes; and the binary
// must work with CAP_NET_ADMIN alone, and fail cleanly without it.
//
// Every test programs the kernel of network namespaces it creates and
// removes, and sends traffic only between them. They need root.
package reliability
