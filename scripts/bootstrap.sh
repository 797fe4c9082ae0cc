#!/usr/bin/env bash
# Creates or refreshes .venv with the project and its pinned dependencies.
# Sourced by run.sh and test.sh; needs only Python >= 3.11 on the PATH.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"

find_python() {
    for cand in python3.11 python3.12 python3.13 python3; do
        if command -v "$cand" >/dev/null 2>&1 &&
            "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            command -v "$cand"
            return 0
        fi
    done
    echo "park-vpp needs Python >= 3.11 on the PATH (tried python3.11, python3.12, python3.13, python3)" >&2
    return 1
}

stamp_of() {
    cat "$root/pyproject.toml" "$root/requirements.lock" | sha256sum | cut -d' ' -f1
}

if [ ! -x "$venv/bin/python" ]; then
    py="$(find_python)"
    echo "bootstrap: creating $venv with $py" >&2
    "$py" -m venv "$venv"
fi
want="$(stamp_of)"
have="$(cat "$venv/.park-vpp-stamp" 2>/dev/null || true)"
if [ "$want" != "$have" ]; then
    echo "bootstrap: installing pinned dependencies into $venv (first run takes about a minute)" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -c "$root/requirements.lock" -e "$root[dev]"
    echo "$want" >"$venv/.park-vpp-stamp"
fi
export PATH="$venv/bin:$PATH"
