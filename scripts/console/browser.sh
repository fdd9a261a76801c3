#!/usr/bin/env bash
# Install the browser the console's browser tests drive: Debian's Chromium.
#
# Playwright's own browser download needs a host outside the package registries, so
# the tests launch the system Chromium instead (executable_path). Idempotent: when a
# Chromium is on PATH it prints its path and does nothing else. Installing needs root
# (apt-get), as scripts/slurm/up.sh does for Slurm.
#
# Prints the browser's path on stdout; says what went wrong on stderr (exit 1).
set -euo pipefail

LOG="${TMPDIR:-/tmp}/archipel-chromium-apt.log"

say() { printf 'console-browser: %s\n' "$*" >&2; }
die() {
    say "ERROR: $*"
    exit 1
}

found() { # the first Chromium on PATH, if any
    command -v chromium || command -v chromium-browser || true
}

browser="$(found)"
if [[ -z "$browser" ]]; then
    [[ "$(id -u)" == 0 ]] || die "chromium is not installed and installing it needs root: run 'apt-get install -y chromium' as root"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends chromium fonts-dejavu-core >"$LOG" 2>&1; then
        apt-get update >>"$LOG" 2>&1 || die "apt-get update failed (see $LOG)"
        apt-get install -y --no-install-recommends chromium fonts-dejavu-core >>"$LOG" 2>&1 \
            || die "apt-get install chromium failed (see $LOG)"
    fi
    browser="$(found)"
    [[ -n "$browser" ]] || die "chromium was installed but is not on PATH (see $LOG)"
fi
printf '%s\n' "$browser"
