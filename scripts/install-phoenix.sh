#!/usr/bin/env bash
# Install Arize Phoenix (from PyPI) into its own cached venv for the viewer tests
# (tests/test_viewers_phoenix.py). Phoenix is large (~150 packages, ~850 MB), so it never
# goes into the project's test extra: it lives in
#   ${SPANHOOK_CACHE_DIR:-$HOME/.cache/spanhook}/phoenix-<version>/venv
# and an existing, complete install is reused. Prints the venv's python as its last line.
# Without python3's venv module this exits 0 with a message (the tests then skip), or 1 when
# CI is set (the viewer tests must not skip in CI).
set -euo pipefail

PHOENIX_VERSION="20.26.1"  # the Phoenix the viewer tests run against

cache_dir="${SPANHOOK_CACHE_DIR:-${HOME}/.cache/spanhook}"
venv="${cache_dir}/phoenix-${PHOENIX_VERSION}/venv"
marker="${venv}/.spanhook-installed"

log() { echo "install-phoenix: $*" >&2; }

if [[ -f "${marker}" && -x "${venv}/bin/python" ]]; then
    echo "${venv}/bin/python"
    exit 0
fi
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    log "python3 with the venv module is needed to install Phoenix"
    [[ -n "${CI:-}" ]] && exit 1
    exit 0
fi
log "installing arize-phoenix==${PHOENIX_VERSION} into ${venv} (a few minutes on a cold cache)"
rm -rf "${venv}"
python3 -m venv "${venv}"
"${venv}/bin/python" -m pip install --quiet --upgrade pip >&2
"${venv}/bin/python" -m pip install --quiet "arize-phoenix==${PHOENIX_VERSION}" >&2
"${venv}/bin/python" -c 'import phoenix.server.main' >&2
touch "${marker}"
echo "${venv}/bin/python"
