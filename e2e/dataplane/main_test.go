package dataplane_test

import (
	"testing"

	"github.com/nftproxy/nftproxy/e2e/framework"
)

func TestMain(m *testing.M) { framework.Main(m, "nft", "ip", "conntrack") }
