package main

import (
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// defaultPath is the PATH an image gets when its options set none, the one
// Docker's builder gives a Linux image: without it a container's runtime
// may start the process with no PATH at all.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// options describe one image.
type options struct {
	// layers are root filesystem directories or tarballs, lowest first.
	layers []string
	// ref is the image reference written into the archive, fully spelled
	// out (registry, repository and tag), as the runtime will be asked for
	// it.
	ref        string
	entrypoint []string
	cmd        []string
	env        []string
	labels     map[string]string
	user       string
	workdir    string
	arch       string
	// created is the time of the image and of every file in it.
	created time.Time
	// output is the path of the archive to write.
	output string
}

// build writes the image described by o to o.output as a `docker save`
// archive, the format `ctr images import` and `docker load` read.
func build(o options) error {
	tag, err := name.NewTag(o.ref, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", o.ref, err)
	}
	if len(o.layers) == 0 {
		return fmt.Errorf("an image needs at least one layer")
	}
	// The compressed layers live next to the output until it is written:
	// the archive is made from them without compressing anything twice.
	tmp, err := os.MkdirTemp(filepath.Dir(o.output), ".mkimage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	img, err := mutate.ConfigFile(empty.Image, configFile(o))
	if err != nil {
		return err
	}
	for i, src := range o.layers {
		layer, err := compressedLayer(src, filepath.Join(tmp, fmt.Sprintf("layer-%d.tar.gz", i)), o.created)
		if err != nil {
			return fmt.Errorf("layer %s: %w", src, err)
		}
		img, err = mutate.Append(img, mutate.Addendum{
			Layer: layer,
			History: v1.History{
				Created: v1.Time{Time: o.created},
				// The base name only: the builder's directories are no
				// part of the image.
				CreatedBy: "mkimage --layer " + filepath.Base(src),
			},
		})
		if err != nil {
			return fmt.Errorf("layer %s: %w", src, err)
		}
	}
	// Written under a temporary name and renamed, so that an interrupted
	// build never leaves a truncated archive where a finished one belongs.
	partial := o.output + ".partial"
	if err := tarball.WriteToFile(partial, tag, img); err != nil {
		os.Remove(partial)
		return fmt.Errorf("writing %s: %w", o.output, err)
	}
	return os.Rename(partial, o.output)
}

// configFile returns the image configuration of o, without its layers.
func configFile(o options) *v1.ConfigFile {
	env := o.env
	if !hasPath(env) {
		env = append([]string{defaultPath}, env...)
	}
	return &v1.ConfigFile{
		Architecture: o.arch,
		OS:           "linux",
		Created:      v1.Time{Time: o.created},
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			Entrypoint: o.entrypoint,
			Cmd:        o.cmd,
			Env:        env,
			Labels:     o.labels,
			User:       o.user,
			WorkingDir: o.workdir,
		},
	}
}

func hasPath(env []string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			return true
		}
	}
	return false
}

// compressedLayer writes the layer made of src to path, gzip-compressed,
// and returns it as an image layer read from that file.
func compressedLayer(src, path string, mtime time.Time) (v1.Layer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The gzip header carries no name and no time, so equal layers
	// compress to equal bytes and so to equal digests.
	zw := gzip.NewWriter(f)
	if err := writeLayer(zw, src, mtime); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return tarball.LayerFromFile(path)
}
