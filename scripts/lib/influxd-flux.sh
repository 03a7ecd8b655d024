# shellcheck shell=bash
# InfluxDB 1.8 built from Go modules: the 1.8 line serves the 2.x query API (/api/v2/query, Flux) with
# flux-enabled, so the Flux path of the alert-metrics reader is tested against a real server
# (test/integration/alert-metrics-flux.test.ts). Debian ships only 1.6, which has no Flux.
# Needs find_go from temporal-cli.sh. GOTOOLCHAIN=local: never fetch a prebuilt toolchain.
INFLUXD_FLUX_VERSION=1.8.10
INFLUXD_FLUX_MODULE=github.com/influxdata/influxdb/cmd/influxd

ensure_influxd_flux() {
  local dir="$VMMIG_CACHE/influxd-1.8" log go_bin
  if [ -x "$dir/influxd" ]; then
    say "InfluxDB $INFLUXD_FLUX_VERSION (Flux tests): $dir/influxd"
    return
  fi
  go_bin="$(find_go)"
  [ -n "$go_bin" ] || die "InfluxDB $INFLUXD_FLUX_VERSION for the Flux tests is built with Go, which is not installed"
  log="$VMMIG_CACHE/logs/influxd-1.8-build.log"
  mkdir -p "$dir" "$VMMIG_CACHE/logs"
  say "InfluxDB $INFLUXD_FLUX_VERSION (Flux tests): building $INFLUXD_FLUX_MODULE@v$INFLUXD_FLUX_VERSION (minutes on first run; log: $log)"
  if GOTOOLCHAIN=local GOBIN="$dir" nice -n 10 "$go_bin" install "$INFLUXD_FLUX_MODULE@v$INFLUXD_FLUX_VERSION" >"$log" 2>&1; then
    return
  fi
  if grep -qiE 'verifying|checksum|sum\.golang|GOSUMDB' "$log"; then
    warn "go install failed verifying module checksums: retrying once with GOSUMDB=off"
    GOSUMDB=off GOTOOLCHAIN=local GOBIN="$dir" nice -n 10 "$go_bin" install "$INFLUXD_FLUX_MODULE@v$INFLUXD_FLUX_VERSION" >>"$log" 2>&1 && return
  fi
  tail -n 20 "$log" >&2
  die "building InfluxDB $INFLUXD_FLUX_VERSION failed (full log: $log)"
}
