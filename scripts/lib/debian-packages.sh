# shellcheck shell=bash
# Debian packages the stack runs on. The postgresql, etcd-server and influxdb packages may start
# system services when installed: harmless, the project runs its own instances on other ports
# and directories and never talks to those.
DEBIAN_PACKAGES=(
  qemu-system-x86 qemu-utils etcd-server influxdb postgresql cpio busybox-static gcc libc6-dev gnutls-bin
)

missing_debian_packages() {
  local line
  # Packages dpkg never heard of are missing too: they print nothing here, so start from all of them.
  declare -A installed=()
  while read -r line; do
    case "$line" in
      *' ii') installed["${line%% *}"]=1 ;;
    esac
  done < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${DEBIAN_PACKAGES[@]}" 2>/dev/null | sed 's/ *$//')
  local pkg
  for pkg in "${DEBIAN_PACKAGES[@]}"; do
    [ -n "${installed[$pkg]:-}" ] || printf '%s\n' "$pkg"
  done
}

ensure_debian_packages() {
  command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this setup expects Debian 12 (or a derivative)"
  local missing
  mapfile -t missing < <(missing_debian_packages)
  if [ "${#missing[@]}" -eq 0 ]; then
    say "Debian packages: all ${#DEBIAN_PACKAGES[@]} installed"
    return
  fi
  say "Debian packages: installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q ||
    die "apt-get update failed: cannot install ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" ||
    die "apt-get install failed for: ${missing[*]}"
  mapfile -t missing < <(missing_debian_packages)
  [ "${#missing[@]}" -eq 0 ] || die "still missing after apt-get install: ${missing[*]}"
}
