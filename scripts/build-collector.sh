#!/usr/bin/env bash
# Build the minimal OpenTelemetry Collector used by spanhook's integration tests
# (tests marked `collector`) with the OpenTelemetry Collector Builder (ocb).
#
#   scripts/build-collector.sh            # prints the binary's path as its last line
#
# Components: scripts/otelcol-builder.yaml (exactly what collector-config.yaml uses).
# The binary goes to
#   ${SPANHOOK_CACHE_DIR:-$HOME/.cache/spanhook}/otelcol-spanhook-<version>-<manifest hash>/otelcol-spanhook
# and is never written into the repository. An existing binary is reused.
# Without a Go toolchain this exits 0 with a message (tests then skip), or 1 when CI is set.
set -euo pipefail

OTELCOL_VERSION="0.165.0" # keep in sync with scripts/otelcol-builder.yaml and docker-compose.yml

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "${script_dir}/ocb-build.sh" otelcol-spanhook "${OTELCOL_VERSION}" "${script_dir}/otelcol-builder.yaml"
