#!/usr/bin/env bash
# Build Jaeger v2 (the `jaeger` all-in-one binary) from source for spanhook's
# Collector -> Jaeger integration test (tests/test_collector_config.py).
#
#   scripts/build-jaeger.sh               # prints the binary's path as its last line
#
# Jaeger v2 releases are tagged twice on the same commit: v2.X.0 (the product version,
# used for the docker image) and v1.(X+63).0 (the Go module version). The v2 tags are not
# valid Go module versions for github.com/jaegertracing/jaeger, so we build from the v1 tag.
#
# `go install github.com/jaegertracing/jaeger/cmd/jaeger@v1.76.0` does not work: Jaeger's
# go.mod has a `replace` directive, which `go install pkg@version` refuses. So we fetch the
# module source with `go mod download` (from the Go module proxy) and `go build` it.
# The binary has no embedded web UI (its assets come from a separate jaeger-ui build); the
# HTTP query API (/api/services, /api/traces, /api/v3/...) works.
#
# The binary goes to ${SPANHOOK_CACHE_DIR:-$HOME/.cache/spanhook}/jaeger-<version>/jaeger
# and is never written into the repository. An existing binary is reused.
# Without a Go toolchain this exits 0 with a message (tests then skip), or 1 when CI is set.
set -euo pipefail

JAEGER_VERSION="2.13.0"            # docker image tag; keep in sync with docker-compose.yml
JAEGER_GO_MODULE_VERSION="v1.76.0" # the Go module tag of the same release commit

cache_dir="${SPANHOOK_CACHE_DIR:-${HOME}/.cache/spanhook}"
module="github.com/jaegertracing/jaeger"

log() { echo "build-jaeger: $*" >&2; }

if ! command -v go >/dev/null 2>&1; then
    log "the Go toolchain ('go') is not on PATH, so Jaeger cannot be built;"
    log "install Go >= 1.25 and rerun scripts/build-jaeger.sh (the Jaeger integration test skips until then)."
    if [[ -n "${CI:-}" ]]; then
        exit 1
    fi
    exit 0
fi

out_dir="${cache_dir}/jaeger-${JAEGER_VERSION}"
binary="${out_dir}/jaeger"

if [[ -x "${binary}" ]]; then
    log "up to date: ${binary}"
    echo "${binary}"
    exit 0
fi

mkdir -p "${cache_dir}"
work_dir="$(mktemp -d "${cache_dir}/.jaeger-build.XXXXXX")"
trap 'chmod -R u+w "${work_dir}" 2>/dev/null || true; rm -rf "${work_dir}"' EXIT

log "fetching ${module}@${JAEGER_GO_MODULE_VERSION} (Jaeger v${JAEGER_VERSION}) from the Go module proxy"
src_dir="$(cd "${work_dir}" && go mod download -json "${module}@${JAEGER_GO_MODULE_VERSION}" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
if [[ -z "${src_dir}" || ! -d "${src_dir}" ]]; then
    log "could not download ${module}@${JAEGER_GO_MODULE_VERSION}"
    exit 1
fi

# The module cache is read-only; build from a writable copy.
cp -R "${src_dir}" "${work_dir}/src"
chmod -R u+w "${work_dir}/src"

log "building jaeger v${JAEGER_VERSION}; this takes several minutes the first time"
start=${SECONDS}
version_pkg="${module}/internal/version"
(
    cd "${work_dir}/src"
    CGO_ENABLED=0 go build -trimpath \
        -ldflags "-s -w -X ${version_pkg}.latestVersion=v${JAEGER_VERSION} -X ${version_pkg}.commitSHA=${JAEGER_GO_MODULE_VERSION}" \
        -o "${work_dir}/jaeger" ./cmd/jaeger
) >&2
log "built in $((SECONDS - start)) s"

mkdir -p "${out_dir}"
# Move into place atomically so a concurrent run never sees a half-written binary.
mv "${work_dir}/jaeger" "${out_dir}/jaeger.tmp.$$"
mv "${out_dir}/jaeger.tmp.$$" "${binary}"
"${binary}" version >&2 || true
echo "${binary}"
