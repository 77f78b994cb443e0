#!/usr/bin/env bash
# Install spanhook with its test extras into .venv, build the real OpenTelemetry Collector
# and Jaeger for the integration tests (cached under ~/.cache/spanhook; needs Go), then run
# the linters and the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"

bash scripts/build-collector.sh
bash scripts/build-jaeger.sh
bash scripts/build-scaleout-collector.sh

.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy --strict src

set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [[ ${status} -eq 5 ]]; then
    echo "test.sh: pytest collected no tests; that is a failure" >&2
    exit 1
fi
exit ${status}
