#!/usr/bin/env bash
# collect-libs.sh DEST BINARY...: copies the binaries to DEST/usr/bin and exactly their shared
# library closure, as ldd resolves it here (the dynamic loader included), to the same paths
# under DEST, so that DEST is a root filesystem in which the binaries run (chroot DEST
# /usr/bin/NAME). Symbolic links are resolved: each library is copied as a regular file under
# the path the loader looks up, and stripped of its symbol table and debug sections (`strip
# --strip-unneeded` keeps the dynamic symbols the loader binds: 54.7 -> 46.6 MB for the image,
# docs/operations.md). Prints the copied library paths, one a line.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 DEST BINARY..." >&2
  exit 2
fi
dest="$1"
shift
mkdir -p "$dest/usr/bin"
libraries=()
for binary in "$@"; do
  [ -x "$binary" ] || { echo "$binary: not an executable" >&2; exit 1; }
  if ldd "$binary" | grep -q "not found"; then
    ldd "$binary" | grep "not found" >&2
    exit 1
  fi
  # "libx.so.1 => /path/libx.so.1 (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)"; not vdso.
  while read -r path; do
    libraries+=("$path")
  done < <(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
  install -m 0755 "$binary" "$dest/usr/bin/$(basename "$binary")"
done
printf '%s\n' "${libraries[@]}" | sort -u | while read -r library; do
  mkdir -p "$dest$(dirname "$library")"
  cp -L "$library" "$dest$library"
  chmod 0755 "$dest$library"
  strip --strip-unneeded "$dest$library"
  echo "$library"
done
