package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// entry is what a test checks of one tar entry.
type entry struct {
	typ      byte
	mode     int64
	linkname string
	content  string
}

// readTar returns the entries of an uncompressed tar stream by name, and
// fails the test if one is not owned by root or not dated testTime.
func readTar(t *testing.T, r io.Reader) (map[string]entry, []string) {
	t.Helper()
	entries := map[string]entry{}
	var order []string
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return entries, order
		}
		require.NoError(t, err)
		assert.Zero(t, hdr.Uid, hdr.Name)
		assert.Zero(t, hdr.Gid, hdr.Name)
		assert.True(t, testTime.Equal(hdr.ModTime), "%s: time %v", hdr.Name, hdr.ModTime)
		data, err := io.ReadAll(tr)
		require.NoError(t, err)
		entries[hdr.Name] = entry{typ: hdr.Typeflag, mode: hdr.Mode, linkname: hdr.Linkname, content: string(data)}
		order = append(order, hdr.Name)
	}
}

// writeTree makes a small root filesystem with the modes an image needs to
// keep: an executable, a sticky /tmp, a symbolic link.
func writeTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "bin"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "etc"), 0o755))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "tmp"), 0o755))
	require.NoError(t, os.Chmod(filepath.Join(dir, "tmp"), 0o777|os.ModeSticky))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bin", "tool"), []byte("#!/bin/sh\n"), 0o755))
	require.NoError(t, os.Chmod(filepath.Join(dir, "bin", "tool"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "etc", "passwd"), []byte("root:x:0:0::/:/bin/sh\n"), 0o644))
	require.NoError(t, os.Chmod(filepath.Join(dir, "etc", "passwd"), 0o644))
	require.NoError(t, os.Symlink("tool", filepath.Join(dir, "bin", "sh")))
	return dir
}

func TestWriteLayerDirectory(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, writeLayer(&buf, writeTree(t), testTime))
	got, order := readTar(t, &buf)
	assert.Equal(t, map[string]entry{
		"bin/":       {typ: tar.TypeDir, mode: 0o755},
		"bin/sh":     {typ: tar.TypeSymlink, mode: 0o777, linkname: "tool"},
		"bin/tool":   {typ: tar.TypeReg, mode: 0o755, content: "#!/bin/sh\n"},
		"etc/":       {typ: tar.TypeDir, mode: 0o755},
		"etc/passwd": {typ: tar.TypeReg, mode: 0o644, content: "root:x:0:0::/:/bin/sh\n"},
		"tmp/":       {typ: tar.TypeDir, mode: 0o1777},
	}, got)
	// Lexical order: a directory comes before what it holds, and the same
	// tree always gives the same bytes.
	assert.Equal(t, []string{"bin/", "bin/sh", "bin/tool", "etc/", "etc/passwd", "tmp/"}, order)
}

func TestWriteLayerRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	err := writeLayer(io.Discard, dir, testTime)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "fifo")
}

func TestWriteLayerTarball(t *testing.T) {
	for _, compressed := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "gzip"}[compressed], func(t *testing.T) {
			// A tarball as a builder's user makes it: its own owner, its
			// own times, "./" in front of names.
			var raw bytes.Buffer
			tw := tar.NewWriter(&raw)
			for _, h := range []*tar.Header{
				{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755},
				{Name: "./licenses/", Typeflag: tar.TypeDir, Mode: 0o755},
				{Name: "./licenses/LICENSE", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3},
				{Name: "./app", Typeflag: tar.TypeSymlink, Linkname: "/licenses/LICENSE", Mode: 0o777},
			} {
				h.Uid, h.Gid, h.Uname, h.ModTime = 1000, 1000, "builder", time.Now()
				require.NoError(t, tw.WriteHeader(h))
				if h.Size > 0 {
					_, err := tw.Write([]byte("MIT"))
					require.NoError(t, err)
				}
			}
			require.NoError(t, tw.Close())
			data := raw.Bytes()
			if compressed {
				var zbuf bytes.Buffer
				zw := gzip.NewWriter(&zbuf)
				_, err := zw.Write(data)
				require.NoError(t, err)
				require.NoError(t, zw.Close())
				data = zbuf.Bytes()
			}
			path := filepath.Join(t.TempDir(), "layer.tar")
			require.NoError(t, os.WriteFile(path, data, 0o644))

			var buf bytes.Buffer
			require.NoError(t, writeLayer(&buf, path, testTime))
			got, _ := readTar(t, &buf)
			assert.Equal(t, map[string]entry{
				"licenses/":        {typ: tar.TypeDir, mode: 0o755},
				"licenses/LICENSE": {typ: tar.TypeReg, mode: 0o644, content: "MIT"},
				"app":              {typ: tar.TypeSymlink, mode: 0o777, linkname: "/licenses/LICENSE"},
			}, got)
		})
	}
}

func TestBuild(t *testing.T) {
	base := writeTree(t)
	app := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(app, "app"), []byte("binary"), 0o755))
	require.NoError(t, os.Chmod(filepath.Join(app, "app"), 0o755))
	out := t.TempDir()
	o := options{
		layers:     []string{base, app},
		ref:        "registry.example/team/app:1.2.3",
		entrypoint: []string{"/app"},
		cmd:        []string{"run", "--fast"},
		env:        []string{"MODE=test"},
		labels:     map[string]string{"org.opencontainers.image.title": "app"},
		user:       "65535:65535",
		workdir:    "/tmp",
		arch:       "amd64",
		created:    testTime,
		output:     filepath.Join(out, "app.tar"),
	}
	require.NoError(t, build(o))

	tag, err := name.NewTag(o.ref)
	require.NoError(t, err)
	img, err := tarball.ImageFromPath(o.output, &tag)
	require.NoError(t, err)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, "linux", cf.OS)
	assert.Equal(t, "amd64", cf.Architecture)
	assert.True(t, testTime.Equal(cf.Created.Time))
	assert.Equal(t, []string{"/app"}, cf.Config.Entrypoint)
	assert.Equal(t, []string{"run", "--fast"}, cf.Config.Cmd)
	assert.Equal(t, []string{defaultPath, "MODE=test"}, cf.Config.Env)
	assert.Equal(t, "65535:65535", cf.Config.User)
	assert.Equal(t, "/tmp", cf.Config.WorkingDir)
	assert.Equal(t, "app", cf.Config.Labels["org.opencontainers.image.title"])
	assert.Len(t, cf.RootFS.DiffIDs, 2)

	rc := mutate.Extract(img)
	defer rc.Close()
	files, _ := readTar(t, rc)
	assert.Equal(t, entry{typ: tar.TypeReg, mode: 0o755, content: "binary"}, files["app"])
	assert.Equal(t, entry{typ: tar.TypeSymlink, mode: 0o777, linkname: "tool"}, files["bin/sh"])

	// Built again from the same inputs, the image is the same image.
	digest, err := img.Digest()
	require.NoError(t, err)
	o.output = filepath.Join(out, "again.tar")
	require.NoError(t, build(o))
	again, err := tarball.ImageFromPath(o.output, &tag)
	require.NoError(t, err)
	againDigest, err := again.Digest()
	require.NoError(t, err)
	assert.Equal(t, digest, againDigest)

	leftovers, err := filepath.Glob(filepath.Join(out, ".mkimage-*"))
	require.NoError(t, err)
	assert.Empty(t, leftovers, "temporary layer files left behind")
}

func TestBuildRefusesShortReference(t *testing.T) {
	// The runtime is asked for the full name; a short one would be stored
	// under a name nobody asks for.
	err := build(options{layers: []string{t.TempDir()}, ref: "pause", output: filepath.Join(t.TempDir(), "x.tar")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "image reference")
}

func TestCreationTime(t *testing.T) {
	for _, tc := range []struct {
		name, flag, epoch string
		want              time.Time
		wantErr           bool
	}{
		{name: "default", want: time.Unix(0, 0).UTC()},
		{name: "SOURCE_DATE_EPOCH", epoch: "1704164645", want: testTime},
		{name: "flag wins", flag: "2024-01-02T03:04:05Z", epoch: "1", want: testTime},
		{name: "bad flag", flag: "yesterday", wantErr: true},
		{name: "bad epoch", epoch: "soon", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := creationTime(tc.flag, tc.epoch)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.True(t, tc.want.Equal(got), "got %v, want %v", got, tc.want)
		})
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{
		"--layer", "a", "--layer", "b", "--ref", "registry.k8s.io/pause:3.10.2",
		"--entrypoint", "/pause", "--cmd", "x", "--cmd", "y", "--env", "A=1",
		"--label", "k=v", "--user", "0", "--output", "out.tar",
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b"}, o.layers)
	assert.Equal(t, []string{"/pause"}, o.entrypoint)
	assert.Equal(t, []string{"x", "y"}, o.cmd)
	assert.Equal(t, []string{"A=1"}, o.env)
	assert.Equal(t, map[string]string{"k": "v"}, o.labels)
	assert.Equal(t, "0", o.user)

	for _, args := range [][]string{
		{"--ref", "r.io/a:b", "--output", "o.tar"}, // no layer
		{"--layer", "a", "--ref", "r.io/a:b", "--output", "o.tar", "--env", "NOEQUALS"},
		{"--layer", "a", "--ref", "r.io/a:b", "--output", "o.tar", "--label", "x"},
		{"--layer", "a", "--ref", "r.io/a:b", "--output", "o.tar", "stray"},
	} {
		_, err := parseFlags(args)
		assert.Error(t, err, "%q", args)
	}
}
