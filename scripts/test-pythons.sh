#!/usr/bin/env bash
# Run the test suite (without the Phoenix and scale-out tiers) under other Python versions:
# each interpreter given (default: pyenv's 3.10, 3.12 and 3.13, where present) gets its own
# venv under ${TMPDIR:-/tmp}/spanhook-py<version> with spanhook installed editable and the test
# extras. CI runs 3.11 only (scripts/test.sh); this is the check for the other versions.
# Extra pytest arguments go after "--".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

pythons=()
while [[ $# -gt 0 && "$1" != "--" ]]; do pythons+=("$1"); shift; done
[[ "${1:-}" == "--" ]] && shift
if [[ ${#pythons[@]} -eq 0 ]]; then
    for v in 3.10 3.12 3.13; do
        found=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*/bin/python 2>/dev/null | tail -n 1 || true)
        [[ -n "$found" ]] && pythons+=("$found")
    done
fi
[[ ${#pythons[@]} -gt 0 ]] || { echo "test-pythons.sh: no interpreter given or found" >&2; exit 2; }

status=0
for py in "${pythons[@]}"; do
    version=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    venv="${TMPDIR:-/tmp}/spanhook-py${version}"
    [[ -x "$venv/bin/python" ]] || "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -e ".[test]"
    echo "== Python ${version}"
    "$venv/bin/python" -m pytest -q -p no:cacheprovider --deselect tests/test_viewers_phoenix.py \
        --ignore-glob='tests/test_scaleout*' "$@" || status=1
done
exit ${status}
