#!/bin/sh
# Unpacks Debian's `ovmf` package into target/ovmf (or $1) so the firmware-measurement tests
# find a real TDVF image at target/ovmf/usr/share/ovmf/OVMF.fd.
#
# The expected MRTD in tests/repro_measure.rs is for ovmf 2022.11-6+deb12u2; that version is
# asked for first, and any other version is unpacked with a warning (the test then fails and
# says the image differs).
set -eu

PINNED="2022.11-6+deb12u2"
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-$root/target/ovmf}"

if [ -f "$dest/usr/share/ovmf/OVMF.fd" ]; then
    echo "fetch-ovmf: $dest/usr/share/ovmf/OVMF.fd already present"
    exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
# apt-get download drops privileges to _apt; let it write here.
chmod 0777 "$work"

if ! apt-get download "ovmf=$PINNED" >/dev/null 2>&1; then
    apt-get update >/dev/null
    if ! apt-get download "ovmf=$PINNED" >/dev/null 2>&1; then
        echo "fetch-ovmf: warning: ovmf $PINNED not available, fetching the current version" >&2
        apt-get download ovmf
    fi
fi

mkdir -p "$dest"
dpkg-deb -x ovmf_*.deb "$dest"
echo "fetch-ovmf: unpacked $(ls ovmf_*.deb) into $dest"
ls -l "$dest/usr/share/ovmf/OVMF.fd"
