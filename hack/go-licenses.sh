#!/usr/bin/env bash
# Copies the license files of every module linked into a Go binary, and
# Go's own, into a directory: DEST/<module path>/LICENSE and so on. The
# list of modules is the one the binary records (go version -m), so it
# names exactly what was linked, and the files come from the module cache.
#
#   hack/go-licenses.sh BINARY DEST
#
# A module without a LICENSE, COPYING or NOTICE file at its root fails the
# run: an image must not ship code whose license it cannot show.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 BINARY DEST" >&2
  exit 2
fi
binary=$1 dest=$2
modcache=$(go env GOMODCACHE)

# The module cache spells an upper-case letter as "!" and the lower-case
# letter, so that paths differing only in case do not collide.
escape() { sed -E 's/([A-Z])/!\L\1/g' <<<"$1"; }

# copy_licenses MODULE VERSION: the module's license files into DEST.
copy_licenses() {
  local module=$1 version=$2 dir found=0
  dir="$modcache/$(escape "$module")@$(escape "$version")"
  if [ ! -d "$dir" ]; then
    # From outside any module: the download must not touch a go.sum.
    (cd / && go mod download "$module@$version" >/dev/null)
  fi
  mkdir -p "$dest/$module"
  while IFS= read -r -d '' f; do
    cp "$f" "$dest/$module/"
    chmod 0644 "$dest/$module/$(basename "$f")"
    found=1
  done < <(find "$dir" -maxdepth 1 -type f \( -iname 'licen[cs]e*' -o -iname 'copying*' -o -iname 'notice*' \) -print0)
  if [ "$found" = 0 ]; then
    echo "go-licenses: $module@$version has no license file in $dir" >&2
    return 1
  fi
}

# The modules as linked: "dep PATH VERSION", each possibly followed by
# "=> PATH VERSION" when go.mod replaced it; the replacement is what was
# compiled. The main module ("mod") counts too when it has a version, as
# a binary installed with go install does.
modules=$(go version -m "$binary" | awk -F'\t' '
  $2 == "mod" && $4 != "(devel)" { print $3, $4 }
  $2 == "dep" { if (pending) print pending; pending = $3 " " $4 }
  $2 == "=>"  { pending = ($4 == "") ? "" : $3 " " $4 }
  END { if (pending) print pending }
')

mkdir -p "$dest/go"
cp "$(go env GOROOT)/LICENSE" "$dest/go/LICENSE"
chmod 0644 "$dest/go/LICENSE"
status=0
while read -r module version; do
  [ -n "$module" ] || continue
  copy_licenses "$module" "$version" || status=1
done <<<"$modules"
exit $status
