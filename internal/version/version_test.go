package version

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestString(t *testing.T) {
	assert.Equal(t, "nftproxy dev (commit unknown, "+runtime.Version()+")", String())
}
