#!/usr/bin/env bash
# Re-fetch the console's vendored htmx (and the browser tests' axe-core) from the npm
# registry and check them.
#
# The console ships htmx.min.js inside the package (src/archipel/console/static/), so the
# server needs no Node and no CDN at run time. This script is how that file was made:
# `npm pack htmx.org@VERSION`, the tarball's integrity checked by npm, dist/htmx.min.js
# copied out. Its SHA-256 must equal HTMX_SHA256 below, which
# tests/console/test_static.py checks against the shipped file too.
#
# To move to another htmx: set HTMX_VERSION, run this script with --update (it takes the
# file and prints its digest), then set HTMX_SHA256 here and HTMX_VERSION and HTMX_SHA256 in
# src/archipel/console/_assets.py to match. The same for axe-core (AXE_*, below; its pin is
# checked by tests/console/test_static.py too).
set -euo pipefail

HTMX_VERSION="2.0.11"
HTMX_SHA256="d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717"

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DEST="$ROOT/src/archipel/console/static/htmx.min.js"
update=false
[[ "${1:-}" == "--update" ]] && update=true

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "htmx.org@$HTMX_VERSION" >/dev/null)
tar -xzf "$work/htmx.org-$HTMX_VERSION.tgz" -C "$work" package/dist/htmx.min.js
digest="$(sha256sum "$work/package/dist/htmx.min.js" | cut -d' ' -f1)"
if [[ "$digest" != "$HTMX_SHA256" && "$update" != true ]]; then
    echo "vendor.sh: htmx.org@$HTMX_VERSION dist/htmx.min.js has SHA-256 $digest, expected $HTMX_SHA256" >&2
    echo "vendor.sh: (run with --update to take the new file on purpose)" >&2
    exit 1
fi
cp "$work/package/dist/htmx.min.js" "$DEST"
echo "htmx.org@$HTMX_VERSION -> $DEST (sha256 $digest)"

# The browser tests' accessibility checker (axe-core, injected into the pages under test;
# never shipped in the package): the same way, pinned by version and digest.
AXE_VERSION="4.14.1"
AXE_SHA256="29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"
AXE_DEST="$ROOT/tests/console/vendor/axe.min.js"
(cd "$work" && npm pack --silent "axe-core@$AXE_VERSION" >/dev/null)
tar -xzf "$work/axe-core-$AXE_VERSION.tgz" -C "$work" package/axe.min.js
digest="$(sha256sum "$work/package/axe.min.js" | cut -d' ' -f1)"
if [[ "$digest" != "$AXE_SHA256" && "$update" != true ]]; then
    echo "vendor.sh: axe-core@$AXE_VERSION axe.min.js has SHA-256 $digest, expected $AXE_SHA256" >&2
    exit 1
fi
mkdir -p "$(dirname "$AXE_DEST")"
cp "$work/package/axe.min.js" "$AXE_DEST"
echo "axe-core@$AXE_VERSION -> $AXE_DEST (sha256 $digest)"
