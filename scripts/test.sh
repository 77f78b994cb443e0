#!/usr/bin/env bash
# Install spanhook with its test extras into .venv, build the real OpenTelemetry Collector
# and Jaeger for the integration tests (cached under ~/.cache/spanhook; needs Go), install
# Debian's headless Chromium for the browser tests (needs root and apt), then run
# the linters and the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"

bash scripts/build-collector.sh
bash scripts/build-jaeger.sh
bash scripts/build-scaleout-collector.sh
bash scripts/install-phoenix.sh >/dev/null && bash scripts/install-chromium.sh >/dev/null  # viewer tests
bash scripts/install-compose.sh  # docker-compose.yml checked by the compose CLI

.venv/bin/ruff check src tests benchmarks examples
.venv/bin/ruff format --check src tests benchmarks examples
.venv/bin/mypy --strict src examples

set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [[ ${status} -eq 5 ]]; then
    echo "test.sh: pytest collected no tests; that is a failure" >&2
    exit 1
fi
exit ${status}
