#!/bin/sh
# Installs Debian's Chromium and ChromeDriver for the browser tests (tests/test_web.py), when they are missing
# and apt-get can be used (as root, or with sudo that needs no password). Never fails: on a machine where the
# browser cannot be installed it prints a note, and the browser tests skip with that reason (under CI=true
# they fail instead). Fast when both are already there.
set -u
PKGS="chromium chromium-driver"

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "note: chromium/chromedriver missing and no apt-get here: the browser tests will be skipped"
    exit 0
fi
if [ "$(id -u)" = 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "note: chromium/chromedriver missing and apt-get needs root: the browser tests will be skipped"
    exit 0
fi

install() {
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
}
echo "installing $PKGS for the browser tests (apt-get)"
# A machine whose package lists are missing or stale needs an update first; try without it, it is slow.
if ! install; then
    $SUDO apt-get update -qq >/dev/null && install || \
        echo "note: could not install $PKGS: the browser tests will be skipped"
fi
exit 0
