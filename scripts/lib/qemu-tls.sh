# shellcheck shell=bash
# The dev CA of QEMU's migration TLS, made once: $VMMIG_CACHE/tls/ca-cert.pem and ca-key.pem. Each
# host agent issues its own certificates from it at start (agent/tls-issue.ts, with certtool) into
# $VMMIG_CACHE/tls/hosts/<host name>/ (CN = the host's name, subjectAltNames its name and addresses),
# so every host of the dev stack and the tests has its own identity. Production brings its own CA and
# certificates and gives agents no CA key (docs/architecture.md, "Migration TLS").
QEMU_TLS_CA_FILES=(ca-cert.pem ca-key.pem)
# What an older setup made: one server/client pair shared by every host (no longer used).
QEMU_TLS_SHARED_PAIR=(server-cert.pem server-key.pem client-cert.pem client-key.pem)

ensure_qemu_tls_certs() {
  local dir="$VMMIG_CACHE/tls" file complete=1 legacy=()
  for file in "${QEMU_TLS_SHARED_PAIR[@]}"; do
    [ -e "$dir/$file" ] && legacy+=("$file")
  done
  if [ "${#legacy[@]}" -gt 0 ]; then
    say "QEMU TLS: removing the shared certificate pair of an older setup from $dir (${legacy[*]}): hosts issue their own now"
    (cd "$dir" && rm -f "${legacy[@]}")
  fi
  for file in "${QEMU_TLS_CA_FILES[@]}"; do
    [ -s "$dir/$file" ] || complete=0
  done
  if [ "$complete" -eq 1 ]; then
    say "QEMU TLS CA: present in $dir (host certificates in $dir/hosts/, issued by the agents)"
    return
  fi
  command -v certtool >/dev/null 2>&1 || die "certtool not found: install the Debian package gnutls-bin"
  say "QEMU TLS CA: generating in $dir"
  local work
  work="$(mktemp -d)"
  (
    set -euo pipefail
    cd "$work"
    cat >ca.info <<'INFO'
cn = "vmmig migration dev CA"
ca
cert_signing_key
expiration_days = 3650
INFO
    certtool --generate-privkey --key-type=rsa --bits=2048 --outfile ca-key.pem
    certtool --generate-self-signed --load-privkey ca-key.pem --template ca.info --outfile ca-cert.pem
    chmod 600 ca-key.pem
  ) >"$work/certtool.log" 2>&1 || {
    tail -n 20 "$work/certtool.log" >&2
    rm -rf "$work"
    die "certtool failed generating the QEMU TLS CA"
  }
  mkdir -p "$dir"
  chmod 700 "$dir"
  # Host certificates of a previous CA would not verify against the new one: agents issue them again.
  rm -rf "$dir/hosts"
  # The key first, the certificate last: a complete pair is what the next run checks.
  cp "$work/ca-key.pem" "$dir/ca-key.pem.tmp" && mv "$dir/ca-key.pem.tmp" "$dir/ca-key.pem"
  cp "$work/ca-cert.pem" "$dir/ca-cert.pem.tmp" && mv "$dir/ca-cert.pem.tmp" "$dir/ca-cert.pem"
  rm -rf "$work"
}
