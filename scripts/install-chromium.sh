#!/usr/bin/env bash
# Install Debian's headless Chromium and ChromeDriver for the browser tests (idempotent).
# Prints the chromium path as its last line. Without root or apt this exits 1 when CI is set
# (the browser tests must not skip in CI), 0 otherwise (they then skip with a message).
set -euo pipefail
log() { echo "install-chromium: $*" >&2; }
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    command -v chromium
    exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    log "chromium is not installed and cannot be installed here (needs root and apt-get)"
    [[ -n "${CI:-}" ]] && exit 1
    exit 0
fi
log "installing Debian's chromium and chromium-driver"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >&2
command -v chromium
