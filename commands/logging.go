package commands

import (
	"flag"
	"fmt"
	"io"
	"strconv"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/textlogger"

	"github.com/nftproxy/nftproxy/config"
)

// newLogger returns the agent's logger, writing to w in format (text or
// json) with V-levels up to verbosity. It also becomes klog's logger, so
// that client-go's messages come out in the same format and at the same
// verbosity instead of in klog's own.
func newLogger(w io.Writer, format string, verbosity int) logr.Logger {
	var log logr.Logger
	switch format {
	case config.LoggingFormatJSON:
		log = funcr.NewJSON(func(obj string) { fmt.Fprintln(w, obj) }, funcr.Options{
			LogTimestamp: true,
			Verbosity:    verbosity,
		})
	default:
		log = textlogger.NewLogger(textlogger.NewConfig(textlogger.Verbosity(verbosity), textlogger.Output(w)))
	}
	var klogFlags flag.FlagSet
	klog.InitFlags(&klogFlags)
	// klog checks its own verbosity before it hands a message on.
	_ = klogFlags.Set("v", strconv.Itoa(verbosity))
	klog.SetLogger(log)
	return log
}
