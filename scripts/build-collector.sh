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
manifest="${script_dir}/otelcol-builder.yaml"
cache_dir="${SPANHOOK_CACHE_DIR:-${HOME}/.cache/spanhook}"

log() { echo "build-collector: $*" >&2; }

if ! command -v go >/dev/null 2>&1; then
    log "the Go toolchain ('go') is not on PATH, so the OpenTelemetry Collector cannot be built;"
    log "install Go >= 1.26 and rerun scripts/build-collector.sh (tests marked 'collector' skip until then)."
    if [[ -n "${CI:-}" ]]; then
        exit 1
    fi
    exit 0
fi

manifest_hash="$(sha256sum "${manifest}" | cut -c1-12)"
out_dir="${cache_dir}/otelcol-spanhook-${OTELCOL_VERSION}-${manifest_hash}"
binary="${out_dir}/otelcol-spanhook"

if [[ -x "${binary}" ]]; then
    log "up to date: ${binary}"
    echo "${binary}"
    exit 0
fi

builder_dir="${cache_dir}/tools/ocb-${OTELCOL_VERSION}"
builder="${builder_dir}/builder"
if [[ ! -x "${builder}" ]]; then
    log "installing go.opentelemetry.io/collector/cmd/builder@v${OTELCOL_VERSION} into ${builder_dir}"
    mkdir -p "${builder_dir}"
    GOBIN="${builder_dir}" go install "go.opentelemetry.io/collector/cmd/builder@v${OTELCOL_VERSION}" >&2
fi

mkdir -p "${cache_dir}"
work_dir="$(mktemp -d "${cache_dir}/.otelcol-build.XXXXXX")"
trap 'rm -rf "${work_dir}"' EXIT

# Copy the manifest, pointing dist.output_path at the scratch directory.
awk -v out="${work_dir}/dist" '
    { print }
    /^dist:[[:space:]]*$/ { print "  output_path: " out }
' "${manifest}" >"${work_dir}/manifest.yaml"

log "building otelcol-spanhook ${OTELCOL_VERSION} (manifest ${manifest_hash}); this takes a few minutes the first time"
start=${SECONDS}
"${builder}" --config="${work_dir}/manifest.yaml" >&2
log "built in $((SECONDS - start)) s"

mkdir -p "${out_dir}"
# Move into place atomically so a concurrent run never sees a half-written binary.
mv "${work_dir}/dist/otelcol-spanhook" "${out_dir}/otelcol-spanhook.tmp.$$"
mv "${out_dir}/otelcol-spanhook.tmp.$$" "${binary}"
"${binary}" --version >&2
echo "${binary}"
