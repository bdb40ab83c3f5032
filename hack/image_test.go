package hack

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestImage builds nftproxy's image as `make image` does, into a temporary
// directory, and checks it as a container runtime would see it: how it
// starts the binary, who owns the files, that the binary runs and carries
// the version, and that every module linked into it has its license in
// /licenses.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the whole binary")
	}
	const (
		tag    = "0.0.0-image-test"
		commit = "0123456789abcdef-image-test"
		ref    = "ghcr.io/nftproxy/nftproxy:" + tag
	)
	images := t.TempDir()
	cmd := exec.Command("bash", "hack/image.sh")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "TAG="+tag, "COMMIT="+commit, "IMAGES_DIR="+images)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "hack/image.sh:\n%s", out)

	archive := filepath.Join(images, "nftproxy-"+tag+".tar")
	tagRef, err := name.NewTag(ref)
	require.NoError(t, err)
	img, err := tarball.ImageFromPath(archive, &tagRef)
	require.NoError(t, err, "the archive has no image tagged %s", ref)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, "linux", cf.OS)
	assert.Equal(t, []string{"/nftproxy"}, cf.Config.Entrypoint, "the entrypoint is the binary alone")
	assert.Equal(t, []string{"run"}, cf.Config.Cmd)
	assert.Equal(t, "0", cf.Config.User, "nftables needs root with NET_ADMIN")

	// The root filesystem, unpacked without root: files only, owners
	// checked in the headers.
	rootfs := t.TempDir()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	licenses := map[string]bool{} // module path -> has a license file
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		assert.Zero(t, hdr.Uid, "%s is not owned by root", hdr.Name)
		assert.Zero(t, hdr.Gid, "%s is not owned by group root", hdr.Name)
		if module, ok := strings.CutPrefix(filepath.Dir(hdr.Name), "licenses/"); ok && hdr.Typeflag == tar.TypeReg {
			licenses[module] = true
		}
		if hdr.Name == "nftproxy" {
			assert.Equal(t, int64(0o755), hdr.Mode)
			f, err := os.OpenFile(filepath.Join(rootfs, "nftproxy"), os.O_CREATE|os.O_WRONLY, 0o755)
			require.NoError(t, err)
			_, err = io.Copy(f, tr)
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}
	}
	binary := filepath.Join(rootfs, "nftproxy")
	require.FileExists(t, binary)

	version, err := exec.Command(binary, "version").CombinedOutput()
	require.NoError(t, err, "%s version: %s", binary, version)
	assert.Contains(t, string(version), "nftproxy v"+tag+" (commit "+commit+",")

	assert.True(t, licenses["go"], "Go's own license is missing")
	modules := linkedModules(t, binary)
	require.NotEmpty(t, modules)
	for _, m := range modules {
		assert.True(t, licenses[m], "no license for %s in /licenses", m)
		// mkimage's library builds images; it has no business in the agent.
		assert.NotContains(t, m, "go-containerregistry", "the agent links the image builder's library")
	}
}

// linkedModules returns the paths of the modules linked into a Go binary,
// as its build information records them.
func linkedModules(t *testing.T, binary string) []string {
	t.Helper()
	out, err := exec.Command("go", "version", "-m", binary).Output()
	require.NoError(t, err)
	var modules []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "dep" {
			modules = append(modules, fields[1])
		}
	}
	return modules
}
