#!/usr/bin/env bash
# Arize Phoenix on this machine, for looking at spanhook traces: installs it into its own venv
# (scripts/install-phoenix.sh, cached under ~/.cache/spanhook) and serves it in the foreground
# on 127.0.0.1 only (UI, REST/GraphQL and OTLP/HTTP on PHOENIX_PORT, default 6006; OTLP/gRPC on
# PHOENIX_GRPC_PORT, default 4317), keeping its data in PHOENIX_WORKING_DIR
# (default ~/.cache/spanhook/phoenix-data). Then, in another shell:
#
#   OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:6006 OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf \
#   SPANHOOK_TRACE_VIEWER_URL='http://127.0.0.1:6006/redirects/traces/{trace_id}' spanhook demo
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="$(bash "${here}/install-phoenix.sh" | tail -n 1)"
if [[ ! -x "${python}" ]]; then
    echo "phoenix: Phoenix could not be installed (see above)" >&2
    exit 1
fi
export PHOENIX_HOST=127.0.0.1
export PHOENIX_PORT="${PHOENIX_PORT:-6006}"
export PHOENIX_GRPC_PORT="${PHOENIX_GRPC_PORT:-4317}"
export PHOENIX_WORKING_DIR="${PHOENIX_WORKING_DIR:-${SPANHOOK_CACHE_DIR:-${HOME}/.cache/spanhook}/phoenix-data}"
export PHOENIX_TELEMETRY_ENABLED="${PHOENIX_TELEMETRY_ENABLED:-false}"
export PHOENIX_AGENTS_DISABLE_BASH="${PHOENIX_AGENTS_DISABLE_BASH:-true}"
mkdir -p "${PHOENIX_WORKING_DIR}"
exec "${python}" "${here}/phoenix_serve.py" "$@"
