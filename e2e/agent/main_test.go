package agent

import (
	"testing"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/nftproxy/nftproxy/e2e/framework"
)

func TestMain(m *testing.M) {
	// The tests' API clients log nothing worth reading.
	ctrllog.SetLogger(logr.Discard())
	framework.Main(m, "nft", "ip", "socat", "iptables-nft")
}
