#!/usr/bin/env bash
# The browser of the portal's end-to-end tests: Debian's chromium (Playwright drives it; no
# browser download). Installs it where it is missing and this user may (root with apt-get);
# otherwise says so, and the browser tests skip (they fail instead when CI is set).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian's chromium for the browser tests (first run only, about a minute)..."
  apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 \
    || { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends chromium >/dev/null; }
else
  echo "chromium is missing and cannot be installed here: the browser tests will skip" >&2
fi
