package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// writeLayer writes the layer made of src, a root filesystem directory or
// a tarball (plain or gzip-compressed), to w as an uncompressed tar stream.
// Every entry is owned by root and carries the time mtime, whoever built
// src and whenever: an image built twice from the same files is the same
// image, and nothing in it belongs to the builder's user.
func writeLayer(w io.Writer, src string, mtime time.Time) error {
	info, err := os.Stat(src)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	if info.IsDir() {
		err = copyDir(tw, src, mtime)
	} else {
		err = copyTarball(tw, src, mtime)
	}
	if err != nil {
		return err
	}
	return tw.Close()
}

// copyDir adds the tree under root, root itself left out, in lexical
// order. Regular files, directories and symbolic links are kept with their
// permission bits; anything else (devices, sockets, pipes) is refused, as
// nothing in an image built here needs one. Hard links become separate
// copies.
func copyDir(tw *tar.Writer, root string, mtime time.Time) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == root {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: filepath.ToSlash(rel), Mode: tarMode(info.Mode())}
		switch {
		case info.Mode().IsRegular():
			hdr.Typeflag = tar.TypeReg
			hdr.Size = info.Size()
		case info.IsDir():
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		case info.Mode()&fs.ModeSymlink != 0:
			hdr.Typeflag = tar.TypeSymlink
			if hdr.Linkname, err = os.Readlink(path); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: unsupported file type %s", path, info.Mode().Type())
		}
		if err := tw.WriteHeader(rootOwned(hdr, mtime)); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.Copy(tw, f); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	})
}

// copyTarball adds the entries of the tarball at path, in their order.
func copyTarball(tw *tar.Writer, path string, mtime time.Time) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := maybeGunzip(bufio.NewReader(f))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	tr := tar.NewReader(r)
	for {
		in, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		hdr := &tar.Header{
			Typeflag: in.Typeflag,
			Name:     strings.TrimPrefix(in.Name, "./"),
			Linkname: in.Linkname,
			Size:     in.Size,
			Mode:     in.Mode,
			Devmajor: in.Devmajor,
			Devminor: in.Devminor,
		}
		if hdr.Name == "" {
			continue // the archive's own root, "./"
		}
		if err := tw.WriteHeader(rootOwned(hdr, mtime)); err != nil {
			return fmt.Errorf("%s: %s: %w", path, in.Name, err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return fmt.Errorf("%s: %s: %w", path, in.Name, err)
		}
	}
}

// maybeGunzip returns a reader of the decompressed stream when r starts
// with the gzip magic number, r itself otherwise.
func maybeGunzip(r *bufio.Reader) (io.Reader, error) {
	magic, err := r.Peek(2)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		return gzip.NewReader(r)
	}
	return r, nil
}

// rootOwned sets the fields of hdr that must not depend on the builder:
// owner, group and times.
func rootOwned(hdr *tar.Header, mtime time.Time) *tar.Header {
	hdr.Uid, hdr.Gid = 0, 0
	hdr.Uname, hdr.Gname = "root", "root"
	hdr.ModTime = mtime
	return hdr
}

// tarMode returns the tar header mode of a file mode: the permission bits
// and the setuid, setgid and sticky bits (a /tmp needs 01777).
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}
