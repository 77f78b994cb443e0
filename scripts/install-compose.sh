#!/usr/bin/env bash
# Install a compose command-line tool (Debian's docker-compose) so the tests can check
# docker-compose.yml with `docker compose config` / `docker-compose config` (idempotent; no
# Docker engine is needed for that). Without root or apt this exits 1 when CI is set (the
# check must not skip in CI), 0 otherwise (it then skips with a message).
set -euo pipefail
log() { echo "install-compose: $*" >&2; }
if docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    log "no compose tool, and it cannot be installed here (needs root and apt-get)"
    [[ -n "${CI:-}" ]] && exit 1
    exit 0
fi
log "installing Debian's docker-compose"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends docker-compose >&2
