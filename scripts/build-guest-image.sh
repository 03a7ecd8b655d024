#!/usr/bin/env bash
# Builds the QEMU test guest (Debian cloud kernel + busybox/dirtier/qga initramfs) into
# ${VMMIG_CACHE:-$HOME/.cache/vmmig}/guest-image/{vmlinuz,initramfs.cpio.gz}.
# Idempotent: skips the build when both files exist and the stamp of the inputs matches.
# Needs apt-get download, dpkg-deb, gcc (+ libc6-dev for libc.a), cpio, gzip; run apt-get update first.
set -euo pipefail
# (the awk filters below read their whole input: an early exit would SIGPIPE the producer under pipefail)

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source_dir="$repo_root/agent/guest-image"
out_dir="${VMMIG_CACHE:-$HOME/.cache/vmmig}/guest-image"

log() { echo "[build-guest-image] $*"; }
die() { echo "[build-guest-image] ERROR: $*" >&2; exit 1; }

require_command() { # command package
  command -v "$1" >/dev/null 2>&1 || die "command '$1' not found: install the Debian package '$2' (apt-get install -y $2)"
}

require_command apt-get apt
require_command apt-cache apt
require_command dpkg-deb dpkg
require_command gcc gcc
require_command cpio cpio
require_command gzip gzip
require_command sha256sum coreutils
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || die "libc.a not found: install the Debian package 'libc6-dev' (apt-get install -y libc6-dev)"

candidate_version() { # package -> candidate version, empty if apt does not know it
  apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ && !seen { print $2; seen = 1 }' | sed 's/(none)//'
}

kernel_meta=linux-image-cloud-amd64
kernel_pkg="$(apt-cache depends "$kernel_meta" 2>/dev/null | awk '/Depends: linux-image-/ && !seen { print $2; seen = 1 }')"
[ -n "$kernel_pkg" ] || die "cannot resolve the Debian package '$kernel_meta' (run apt-get update; is it in the sources?)"
kernel_version="$(candidate_version "$kernel_pkg")"
[ -n "$kernel_version" ] || die "no installable version of the Debian package '$kernel_pkg' (run apt-get update)"

if dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed'; then
  busybox_source=installed
  busybox_version="$(dpkg-query -W -f='${Version}' busybox-static)"
else
  busybox_source=download
  busybox_version="$(candidate_version busybox-static)"
  [ -n "$busybox_version" ] || die "no installable version of the Debian package 'busybox-static' (run apt-get update)"
fi

stamp="$(
  {
    echo "$kernel_pkg=$kernel_version"
    echo "busybox-static=$busybox_version"
    gcc -dumpfullversion
    sha256sum "$source_dir/dirtier.c" "$source_dir/qga.c" "$source_dir/init" "${BASH_SOURCE[0]}" | awk '{ print $1 }'
  } | sha256sum | awk '{ print $1 }'
)"

if [ -f "$out_dir/vmlinuz" ] && [ -f "$out_dir/initramfs.cpio.gz" ] && [ "$(cat "$out_dir/stamp" 2>/dev/null)" = "$stamp" ]; then
  log "up to date in $out_dir"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# apt-get download would drop privileges to _apt, which cannot write into our private temp dir.
apt_download() { (cd "$work" && apt-get download -q -o APT::Sandbox::User=root "$1" >/dev/null); }

log "downloading $kernel_pkg=$kernel_version"
apt_download "$kernel_pkg=$kernel_version" ||
  die "apt-get download of the Debian package '$kernel_pkg' failed"
mkdir "$work/kernel"
dpkg-deb -x "$work"/"$kernel_pkg"_*.deb "$work/kernel"
vmlinuz="$(find "$work/kernel/boot" -maxdepth 1 -name 'vmlinuz-*' -print -quit 2>/dev/null || true)"
[ -n "$vmlinuz" ] || die "the Debian package '$kernel_pkg' holds no boot/vmlinuz-*"

root="$work/initramfs"
mkdir -p "$root"/{bin,dev,proc,sys,tmp}
if [ "$busybox_source" = installed ]; then
  cp /bin/busybox "$root/bin/busybox"
else
  log "downloading busybox-static=$busybox_version"
  apt_download "busybox-static=$busybox_version" ||
    die "apt-get download of the Debian package 'busybox-static' failed"
  mkdir "$work/busybox"
  dpkg-deb -x "$work"/busybox-static_*.deb "$work/busybox"
  cp "$work/busybox/bin/busybox" "$root/bin/busybox"
fi

# The disk test of the guest (init, disk_test=1) needs virtio_blk, and its guest agent (qga.c) the
# virtio-serial port of virtio_console: modules in the cloud kernel.
modules_root="$(find "$work/kernel/lib/modules" -mindepth 1 -maxdepth 1 -type d -print -quit)"
[ -n "$modules_root" ] || die "the Debian package '$kernel_pkg' holds no lib/modules/<version>"
for module in drivers/virtio/virtio_ring.ko drivers/virtio/virtio.ko drivers/virtio/virtio_pci_legacy_dev.ko \
  drivers/virtio/virtio_pci_modern_dev.ko drivers/virtio/virtio_pci.ko drivers/block/virtio_blk.ko \
  drivers/char/virtio_console.ko; do
  [ -f "$modules_root/kernel/$module" ] || die "the Debian package '$kernel_pkg' holds no $module"
  install -D -m 644 "$modules_root/kernel/$module" "$root/lib/modules/$(basename "$modules_root")/kernel/$module"
done

log "compiling dirtier"
gcc -static -O2 -Wall -o "$root/bin/dirtier" "$source_dir/dirtier.c"
log "compiling qga"
gcc -static -O2 -Wall -o "$root/bin/qga" "$source_dir/qga.c"
install -m 755 "$source_dir/init" "$root/init"

log "packing initramfs"
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null --create --format=newc --owner=0:0 --quiet) |
  gzip -9 >"$work/initramfs.cpio.gz"

mkdir -p "$out_dir"
cp "$vmlinuz" "$out_dir/vmlinuz.tmp"
cp "$work/initramfs.cpio.gz" "$out_dir/initramfs.cpio.gz.tmp"
mv -f "$out_dir/vmlinuz.tmp" "$out_dir/vmlinuz"
mv -f "$out_dir/initramfs.cpio.gz.tmp" "$out_dir/initramfs.cpio.gz"
echo "$stamp" >"$out_dir/stamp"
log "built $out_dir (kernel $(basename "$vmlinuz"), busybox $busybox_version)"
