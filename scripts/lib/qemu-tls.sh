# shellcheck shell=bash
# x509 certificates for QEMU's migration TLS (tls-creds-x509 reads these exact names from one
# directory): a CA, a server and a client certificate, all for 127.0.0.1 and localhost.
QEMU_TLS_FILES=(ca-cert.pem server-cert.pem server-key.pem client-cert.pem client-key.pem)

ensure_qemu_tls_certs() {
  local dir="$VMMIG_CACHE/tls" file complete=1
  for file in "${QEMU_TLS_FILES[@]}"; do
    [ -s "$dir/$file" ] || complete=0
  done
  if [ "$complete" -eq 1 ]; then
    say "QEMU TLS certificates: present in $dir"
    return
  fi
  command -v certtool >/dev/null 2>&1 || die "certtool not found: install the Debian package gnutls-bin"
  say "QEMU TLS certificates: generating in $dir"
  local work
  work="$(mktemp -d)"
  (
    set -euo pipefail
    cd "$work"
    cat >ca.info <<'INFO'
cn = "vmmig migration test CA"
ca
cert_signing_key
expiration_days = 3650
INFO
    cat >server.info <<'INFO'
organization = "vmmig"
cn = "127.0.0.1"
ip_address = "127.0.0.1"
dns_name = "localhost"
tls_www_server
encryption_key
signing_key
expiration_days = 3650
INFO
    cat >client.info <<'INFO'
organization = "vmmig"
cn = "127.0.0.1"
ip_address = "127.0.0.1"
dns_name = "localhost"
tls_www_client
encryption_key
signing_key
expiration_days = 3650
INFO
    certtool --generate-privkey --bits 2048 --outfile ca-key.pem
    certtool --generate-self-signed --load-privkey ca-key.pem --template ca.info --outfile ca-cert.pem
    for role in server client; do
      certtool --generate-privkey --bits 2048 --outfile "$role-key.pem"
      certtool --generate-certificate --load-privkey "$role-key.pem" --load-ca-certificate ca-cert.pem \
        --load-ca-privkey ca-key.pem --template "$role.info" --outfile "$role-cert.pem"
    done
    chmod 600 ./*-key.pem
  ) >"$work/certtool.log" 2>&1 || {
    tail -n 20 "$work/certtool.log" >&2
    rm -rf "$work"
    die "certtool failed generating the QEMU TLS certificates"
  }
  mkdir -p "$dir"
  chmod 700 "$dir"
  # The CA key stays too, so more certificates can be signed later; the listed files go in last.
  cp "$work/ca-key.pem" "$dir/"
  for file in "${QEMU_TLS_FILES[@]}"; do
    cp "$work/$file" "$dir/$file.tmp" && mv "$dir/$file.tmp" "$dir/$file"
  done
  rm -rf "$work"
}
