#!/usr/bin/env bash
# Installs Debian's chromium and chromium-driver, which the demo page's browser test drives through Selenium,
# when they are missing and apt-get can run (as root, or with passwordless sudo). Otherwise it says how; the
# test then fails with the same advice, unless AIMOD_SKIP_BROWSER=1 is set.
set -euo pipefail
if { command -v chromium || command -v chromium-browser; } >/dev/null && command -v chromedriver >/dev/null; then exit 0; fi
if [ "${AIMOD_SKIP_BROWSER:-}" = 1 ]; then exit 0; fi
advice="Install Chromium and ChromeDriver (Debian/Ubuntu: apt-get install chromium chromium-driver) for the demo page test."
if ! command -v apt-get >/dev/null; then echo "$advice" >&2; exit 0; fi
sudo=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo=(sudo -n); else echo "$advice" >&2; exit 0; fi
fi
echo "Installing chromium and chromium-driver (Debian packages) for the demo page test ..." >&2
{ "${sudo[@]}" apt-get update -qq \
  && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium chromium-driver \
    >/dev/null; } || { echo "apt-get could not install them. $advice" >&2; exit 0; }
