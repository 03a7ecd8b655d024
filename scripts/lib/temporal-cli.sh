# shellcheck shell=bash
# The Temporal CLI (it holds the dev server), found the way scripts/services/temporal-cli.ts finds
# it: TEMPORAL_CLI, else `temporal` on PATH reporting 1.5.1, else $VMMIG_CACHE/bin/temporal, else
# built from source with `go install` (v1.6.0 and later cannot be installed that way).
# GOTOOLCHAIN=local: an older Go must fail with a message, never fetch a prebuilt toolchain.
TEMPORAL_CLI_VERSION=1.5.1
TEMPORAL_CLI_MODULE=github.com/temporalio/cli/cmd/temporal

find_go() {
  if command -v go >/dev/null 2>&1; then
    command -v go
  elif [ -x /usr/local/go/bin/go ]; then
    echo /usr/local/go/bin/go
  fi
}

build_temporal_cli() {
  local go_bin log
  go_bin="$(find_go)"
  [ -n "$go_bin" ] || die "Temporal CLI not found and Go is not installed: install Go >= 1.25 (or set TEMPORAL_CLI to a temporal $TEMPORAL_CLI_VERSION binary)"
  local go_version
  go_version="$("$go_bin" env GOVERSION)"
  if ! printf '%s\n' "$go_version" | awk -F'[go.]+' '{ exit !($2 > 1 || ($2 == 1 && $3 >= 25)) }'; then
    die "Temporal CLI not found and $go_bin is $go_version: building it needs Go >= 1.25"
  fi
  log="$VMMIG_CACHE/logs/temporal-build.log"
  mkdir -p "$VMMIG_CACHE/bin" "$VMMIG_CACHE/logs"
  say "Temporal CLI: building $TEMPORAL_CLI_MODULE@v$TEMPORAL_CLI_VERSION with $go_bin (minutes on first run; log: $log)"
  if GOTOOLCHAIN=local GOBIN="$VMMIG_CACHE/bin" "$go_bin" install "$TEMPORAL_CLI_MODULE@v$TEMPORAL_CLI_VERSION" >"$log" 2>&1; then
    return
  fi
  if grep -qiE 'verifying|checksum|sum\.golang|GOSUMDB' "$log"; then
    warn "go install failed verifying module checksums (checksum database unreachable?): retrying once with GOSUMDB=off"
    GOSUMDB=off GOTOOLCHAIN=local GOBIN="$VMMIG_CACHE/bin" "$go_bin" install "$TEMPORAL_CLI_MODULE@v$TEMPORAL_CLI_VERSION" >>"$log" 2>&1 && return
  fi
  tail -n 20 "$log" >&2
  die "building the Temporal CLI failed (full log: $log)"
}

ensure_temporal_cli() {
  local cached="$VMMIG_CACHE/bin/temporal"
  if [ -n "${TEMPORAL_CLI:-}" ]; then
    [ -x "$TEMPORAL_CLI" ] || die "TEMPORAL_CLI=$TEMPORAL_CLI is not an executable file"
    TEMPORAL_CLI_PATH="$TEMPORAL_CLI"
  elif command -v temporal >/dev/null 2>&1 && temporal --version 2>/dev/null | grep -q "version $TEMPORAL_CLI_VERSION\b"; then
    TEMPORAL_CLI_PATH="$(command -v temporal)"
  else
    [ -x "$cached" ] || build_temporal_cli
    TEMPORAL_CLI_PATH="$cached"
  fi
  say "Temporal CLI: $TEMPORAL_CLI_PATH"
}
