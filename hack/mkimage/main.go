// Command mkimage writes a container image as a `docker save` archive from
// root filesystem directories or tarballs, with no container engine and no
// registry: `ctr -n k8s.io images import` loads the result into containerd.
//
//	mkimage --ref registry.k8s.io/pause:3.10.2 --layer rootfs/ \
//	    --entrypoint /pause --user 65535:65535 --output pause.tar
//
// Each --layer is one layer, lowest first. Files in the image are owned by
// root and dated --created (SOURCE_DATE_EPOCH, or the Unix epoch), so the
// same inputs give the same image digest.
//
// The project's scripts build and run it (hack/image.sh,
// hack/cluster/build-images.sh); it lives apart from the nftproxy binary,
// which does not link it.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
		os.Exit(2)
	}
	if err := build(o); err != nil {
		fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
		os.Exit(1)
	}
}

// list is a flag that may be given several times, each value appended.
type list []string

func (l *list) String() string     { return strings.Join(*l, " ") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	var o options
	var layers, entrypoint, cmd, env, labels list
	fs.Var(&layers, "layer", "a root filesystem directory or tarball (.tar, .tar.gz); repeat for more layers, lowest first")
	fs.StringVar(&o.ref, "ref", "", "image reference, with registry and tag (registry.k8s.io/pause:3.10.2)")
	fs.Var(&entrypoint, "entrypoint", "one word of the entrypoint; repeat for more")
	fs.Var(&cmd, "cmd", "one word of the default arguments; repeat for more")
	fs.Var(&env, "env", "NAME=VALUE in the environment; repeat for more (PATH gets a default)")
	fs.Var(&labels, "label", "NAME=VALUE image label; repeat for more")
	fs.StringVar(&o.user, "user", "", "user (and :group) the process runs as; empty for root")
	fs.StringVar(&o.workdir, "workdir", "", "working directory of the process")
	fs.StringVar(&o.arch, "arch", runtime.GOARCH, "architecture of the image, as GOARCH spells it")
	created := fs.String("created", "", "time of the image and its files, RFC 3339 (default SOURCE_DATE_EPOCH, or the Unix epoch)")
	fs.StringVar(&o.output, "output", "", "path of the archive to write")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.ref == "" || o.output == "" || len(layers) == 0 {
		return options{}, fmt.Errorf("--ref, --output and at least one --layer are required")
	}
	o.layers, o.entrypoint, o.cmd, o.env = layers, entrypoint, cmd, env
	for _, kv := range labels {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return options{}, fmt.Errorf("--label %q: want NAME=VALUE", kv)
		}
		if o.labels == nil {
			o.labels = map[string]string{}
		}
		o.labels[k] = v
	}
	for _, kv := range env {
		if !strings.Contains(kv, "=") {
			return options{}, fmt.Errorf("--env %q: want NAME=VALUE", kv)
		}
	}
	var err error
	if o.created, err = creationTime(*created, os.Getenv("SOURCE_DATE_EPOCH")); err != nil {
		return options{}, err
	}
	return o, nil
}

// creationTime returns the time given by --created, else by
// SOURCE_DATE_EPOCH (the reproducible-builds convention), else the Unix
// epoch: never the current time, which would make every build differ.
func creationTime(flagValue, sourceDateEpoch string) (time.Time, error) {
	switch {
	case flagValue != "":
		t, err := time.Parse(time.RFC3339, flagValue)
		if err != nil {
			return time.Time{}, fmt.Errorf("--created: %w", err)
		}
		return t.UTC(), nil
	case sourceDateEpoch != "":
		sec, err := strconv.ParseInt(sourceDateEpoch, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH: %w", err)
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	return time.Unix(0, 0).UTC(), nil
}
