# shellcheck shell=bash
# node_modules is current when the stamp written after the last install is newer than both
# package-lock.json and package.json.

ensure_npm_deps() {
  local stamp="$REPO_ROOT/node_modules/.vmmig-npm-install.stamp"
  command -v npm >/dev/null 2>&1 || die "npm not found: install Node.js 20 or newer"
  if [ -f "$stamp" ] && [ "$stamp" -nt "$REPO_ROOT/package-lock.json" ] && [ "$stamp" -nt "$REPO_ROOT/package.json" ]; then
    say "npm dependencies: up to date"
    return
  fi
  local log="$VMMIG_CACHE/logs/npm-ci.log"
  mkdir -p "$VMMIG_CACHE/logs"
  say "npm dependencies: running npm ci (log: $log)"
  # The lock file carries every platform's optional packages, so npm ci installs exactly what was tested.
  # Install scripts run only as package.json's allowScripts says (npm 11; README "Setup"): a dependency
  # with a script nobody reviewed fails the install here rather than being skipped with a warning.
  local strict=()
  if [ "$(npm config get strict-allow-scripts 2>/dev/null)" != "undefined" ]; then
    strict=(--strict-allow-scripts)
  fi
  if ! (cd "$REPO_ROOT" && npm ci --no-audit --no-fund "${strict[@]}" >"$log" 2>&1); then
    tail -n 30 "$log" >&2
    die "npm ci failed (log: $log); if it says the lock file is out of sync, run 'npm install --package-lock-only' and commit package-lock.json"
  fi
  touch "$stamp"
}
