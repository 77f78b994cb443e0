#!/usr/bin/env bash
# Build an OpenTelemetry Collector distribution with the official builder (ocb), cached:
#
#   scripts/ocb-build.sh NAME VERSION MANIFEST   # prints the binary's path as its last line
#
# NAME is the manifest's dist.name, VERSION the collector release whose builder generates
# it (every component in MANIFEST must be on that release). The binary goes to
#   ${SPANHOOK_CACHE_DIR:-$HOME/.cache/spanhook}/NAME-VERSION-<manifest hash>/NAME
# and is never written into the repository; an existing binary is reused. Without a Go
# toolchain this exits 0 with a message (the tests that need it then skip), or 1 when CI
# is set. Used by build-collector.sh and build-scaleout-collector.sh.
set -euo pipefail

name="$1"
version="$2"
manifest="$3"
cache_dir="${SPANHOOK_CACHE_DIR:-${HOME}/.cache/spanhook}"

log() { echo "build ${name}: $*" >&2; }

if ! command -v go >/dev/null 2>&1; then
    log "the Go toolchain ('go') is not on PATH, so ${name} cannot be built;"
    log "install Go >= 1.26 and rerun (the tests that need it skip until then)."
    if [[ -n "${CI:-}" ]]; then
        exit 1
    fi
    exit 0
fi

manifest_hash="$(sha256sum "${manifest}" | cut -c1-12)"
out_dir="${cache_dir}/${name}-${version}-${manifest_hash}"
binary="${out_dir}/${name}"

if [[ -x "${binary}" ]]; then
    log "up to date: ${binary}"
    echo "${binary}"
    exit 0
fi

# ocb at the manifest's release (it pins the core modules it generates code for).
builder_dir="${cache_dir}/tools/ocb-${version}"
builder="${builder_dir}/builder"
if [[ ! -x "${builder}" ]]; then
    log "installing go.opentelemetry.io/collector/cmd/builder@v${version} into ${builder_dir}"
    mkdir -p "${builder_dir}"
    GOBIN="${builder_dir}" go install "go.opentelemetry.io/collector/cmd/builder@v${version}" >&2
fi

mkdir -p "${cache_dir}"
work_dir="$(mktemp -d "${cache_dir}/.${name}-build.XXXXXX")"
trap 'rm -rf "${work_dir}"' EXIT

# Copy the manifest, pointing dist.output_path at the scratch directory.
awk -v out="${work_dir}/dist" '
    { print }
    /^dist:[[:space:]]*$/ { print "  output_path: " out }
' "${manifest}" >"${work_dir}/manifest.yaml"

log "building ${version} (manifest ${manifest_hash}); this takes a few minutes the first time"
start=${SECONDS}
"${builder}" --config="${work_dir}/manifest.yaml" >&2
log "built in $((SECONDS - start)) s"

mkdir -p "${out_dir}"
# Move into place atomically so a concurrent run never sees a half-written binary.
mv "${work_dir}/dist/${name}" "${out_dir}/${name}.tmp.$$"
mv "${out_dir}/${name}.tmp.$$" "${binary}"
"${binary}" --version >&2
echo "${binary}"
