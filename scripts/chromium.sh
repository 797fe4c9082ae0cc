#!/usr/bin/env bash
# Makes sure Debian's Chromium is at /usr/bin/chromium, with a font for Chinese: the browser
# the operator page's tests (tests/e2e/test_webpage_*.py) and bench/webpage.py drive through
# Playwright. Installs the missing packages with apt-get (as root; Debian's packages, no
# browser download of Playwright's own). Under CI (CI=true) a missing browser is an error;
# elsewhere the browser tests skip without it, unless VPP_REQUIRE_SERVICES=1 (they fail).
set -uo pipefail
CHROMIUM=/usr/bin/chromium
need=()
[ -x "$CHROMIUM" ] || need+=(chromium)
# The page ships no web font; Chinese is drawn with the platform's CJK font.
fc-list :lang=zh 2>/dev/null | grep -q . || need+=(fonts-wqy-microhei)
if [ "${#need[@]}" -gt 0 ]; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "services: installing ${need[*]} with apt-get" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1 || {
            apt-get update -q >/dev/null 2>&1
            apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1
        } || echo "services: apt-get could not install ${need[*]}" >&2
    else
        echo "services: missing ${need[*]}; install with: sudo apt-get install ${need[*]}" >&2
    fi
fi
if [ -x "$CHROMIUM" ]; then
    echo "services: Chromium at $CHROMIUM ($("$CHROMIUM" --version 2>/dev/null | head -1))" >&2
elif [ "${CI:-}" = "true" ]; then
    echo "services: no Chromium at $CHROMIUM and it could not be installed" >&2
    exit 1
else
    echo "services: no Chromium at $CHROMIUM; the browser tests will be skipped (set VPP_REQUIRE_SERVICES=1 to fail instead)" >&2
fi
