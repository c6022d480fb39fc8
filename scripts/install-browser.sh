#!/bin/sh
# Install the headless browser the e2e tests drive (tests/e2e): Debian's chromium and chromedriver.
# Idempotent and quiet: does nothing when both are present. Needs root (or sudo) and apt.
# No browser is ever downloaded at test time; Selenium is pointed at these two binaries.
set -eu

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-browser.sh: run as root or install sudo" >&2; exit 1; }
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
/usr/bin/chromium --version
