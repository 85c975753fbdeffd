#!/usr/bin/env bash
# tests/browser/run.sh [BOLTZD] [SOURCE_DIR] [SHOTS_DIR]: the dashboard's browser test
# (test_dashboard.mjs) with its npm packages: scripts/web-deps installs them once into a cache
# (npm ci; BOLTZ_WEB_DEPS=DIR uses a ready folder) and checks that web/vendor and web/examples
# match them. Needs node, npm and Debian's chromium (scripts/setup installs them). Screenshots:
# $BROWSER_SHOTS, else $OUT/browser-shots, else SHOTS_DIR, else SOURCE_DIR/build/browser-shots.
# BOLTZ_SKIP_BROWSER=1 skips the test (exit 77, CTest's "skipped").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "${2:-$here/../..}" && pwd)
boltzd=${1:-$src/build/boltzd}
shots=${BROWSER_SHOTS:-${OUT:+$OUT/browser-shots}}
shots=${shots:-${3:-$src/build/browser-shots}}

if [[ "${BOLTZ_SKIP_BROWSER:-0}" == 1 ]]; then echo "browser test skipped (BOLTZ_SKIP_BROWSER=1)"; exit 77; fi
command -v node >/dev/null || { echo "browser test: node not found (scripts/setup installs nodejs)" >&2; exit 1; }
[[ -x "${CHROMIUM:-/usr/bin/chromium}" ]] || { echo "browser test: no ${CHROMIUM:-/usr/bin/chromium} (scripts/setup installs chromium)" >&2; exit 1; }

deps=$("$src/scripts/web-deps" --dir)
BOLTZ_WEB_DEPS=$deps "$src/scripts/web-deps" --check
BOLTZ_WEB_DEPS=$deps BROWSER_SHOTS=$shots exec node "$here/test_dashboard.mjs" "$boltzd" "$src"
