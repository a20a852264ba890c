#!/usr/bin/env bash
# Make sure the browser test of the report (tests/report/test_browser.py) has a headless
# Chromium, before the tests run.
#
# Succeeds, changing nothing, when LUMBAR_CHROMIUM names a browser or one of chromium,
# chromium-browser, google-chrome is on PATH. Otherwise, as root with apt-get, installs
# Debian's chromium package; else says how to get one. Outside CI a missing browser only
# skips that test; under CI=true the test fails, so this script fails too.
set -euo pipefail

say() { printf 'ensure-chromium: %s\n' "$*"; }

if [[ -n "${LUMBAR_CHROMIUM:-}" && -x "${LUMBAR_CHROMIUM}" ]]; then
    say "using $LUMBAR_CHROMIUM"
    exit 0
fi
for name in chromium chromium-browser google-chrome; do
    if found=$(command -v "$name"); then
        say "found $found"
        exit 0
    fi
done

if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    say "no Chromium; installing Debian's package:"
    say "apt-get update && apt-get install -y --no-install-recommends chromium"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends chromium
    if command -v chromium >/dev/null; then
        say "installed $(command -v chromium)"
        exit 0
    fi
    say "installed the chromium package but found no chromium on PATH" >&2
    exit 1
fi

cat >&2 <<'MESSAGE'
ensure-chromium: the browser test of the report needs a headless Chromium, and there is none:
  no LUMBAR_CHROMIUM, and no chromium, chromium-browser or google-chrome on PATH.
Do one of:
  - Debian/Ubuntu:  sudo apt-get install chromium
  - or point the test at a Chromium or Chrome you have:  export LUMBAR_CHROMIUM=/path/to/chrome
MESSAGE
if [[ -n "${CI:-}" ]]; then
    exit 1
fi
say "outside CI: the browser test will be skipped"
