#!/usr/bin/env bash
# The WebDAV clients of the collaboration tests: Debian's rclone (it syncs trees and, with
# fuse3, mounts a space) and litmus (the WebDAV servers' test suite). webdavclient3, the
# Python client, comes with the dev dependencies.
# Installs them where they are missing and this user may (root with apt-get); otherwise says
# so, and the rclone tests skip (they fail instead when CI is set).
set -euo pipefail
if command -v rclone >/dev/null && command -v fusermount3 >/dev/null && command -v litmus >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian's rclone, fuse3 and litmus for the WebDAV tests (first run only)..."
  apt-get install -y --no-install-recommends rclone fuse3 litmus >/dev/null 2>&1 \
    || { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends rclone fuse3 litmus >/dev/null; }
else
  echo "rclone, fuse3 or litmus is missing and cannot be installed here: their tests will skip" >&2
fi
