#!/usr/bin/env bash
# Install Debian's chromium for the browser test when it is missing:
# always in CI (failing loudly), elsewhere only when we are root.
set -euo pipefail
[ -x /usr/bin/chromium ] && exit 0
if [ "$(id -u)" != 0 ] && [ "${CI:-}" != true ]; then
  echo "setup: /usr/bin/chromium is missing; the browser test will be skipped" \
       "(apt-get install chromium to run it)" >&2
  exit 0
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo -n"
echo "setup: installing chromium (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -q chromium >/dev/null \
  || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q chromium >/dev/null; }
