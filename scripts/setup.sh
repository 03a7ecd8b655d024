#!/usr/bin/env bash
# Installs what the project needs and is missing, and nothing else; safe to run again (a run on a
# machine already set up takes a few seconds). Stops with a message naming what it cannot get.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VMMIG_CACHE="${VMMIG_CACHE:-$HOME/.cache/vmmig}"
export VMMIG_CACHE

# shellcheck source=lib/log.sh
source "$REPO_ROOT/scripts/lib/log.sh"
# shellcheck source=lib/debian-packages.sh
source "$REPO_ROOT/scripts/lib/debian-packages.sh"
# shellcheck source=lib/npm-deps.sh
source "$REPO_ROOT/scripts/lib/npm-deps.sh"
# shellcheck source=lib/temporal-cli.sh
source "$REPO_ROOT/scripts/lib/temporal-cli.sh"
# shellcheck source=lib/influxd-flux.sh
source "$REPO_ROOT/scripts/lib/influxd-flux.sh"
# shellcheck source=lib/qemu-tls.sh
source "$REPO_ROOT/scripts/lib/qemu-tls.sh"

ensure_guest_image() {
  local script="$REPO_ROOT/scripts/build-guest-image.sh"
  if [ ! -f "$script" ]; then
    warn "test guest image: $script does not exist yet: skipped (QEMU tests need it)"
    return
  fi
  # It fetches the kernel with apt-get download, which needs package lists; a fresh image has none.
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
    say "apt package lists are empty: apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q || die "apt-get update failed"
  fi
  say "test guest image: bash scripts/build-guest-image.sh"
  bash "$script" || die "building the test guest image failed (scripts/build-guest-image.sh)"
}

mkdir -p "$VMMIG_CACHE"
ensure_debian_packages
ensure_npm_deps
ensure_temporal_cli
ensure_influxd_flux
ensure_guest_image
ensure_qemu_tls_certs
say "done"
