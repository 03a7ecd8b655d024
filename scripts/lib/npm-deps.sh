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
  if ! (cd "$REPO_ROOT" && npm ci --no-audit --no-fund >"$log" 2>&1); then
    if ! grep -q 'are in sync' "$log"; then
      tail -n 30 "$log" >&2
      die "npm ci failed (log: $log)"
    fi
    # Some npm 11 releases reject their own lock file when it lacks entries for other platforms'
    # optional packages (npm/cli#8805). npm install resolves from the same lock; the lock file is
    # put back afterwards so that setup never leaves a tracked file modified.
    warn "npm ci rejected package-lock.json as out of sync (missing other platforms' optional packages): falling back to npm install"
    local lock_backup
    lock_backup="$(mktemp)"
    cp "$REPO_ROOT/package-lock.json" "$lock_backup"
    (cd "$REPO_ROOT" && npm install --no-audit --no-fund 2>&1 | tee -a "$log") || {
      cp "$lock_backup" "$REPO_ROOT/package-lock.json"
      die "npm install failed too (log: $log)"
    }
    cp "$lock_backup" "$REPO_ROOT/package-lock.json"
    rm -f "$lock_backup"
  fi
  touch "$stamp"
}
