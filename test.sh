#!/usr/bin/env bash
# The whole test suite (unit, integration, e2e), lint and the layer contract (.importlinter).
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
scripts/services.sh
ruff check .
ruff format --check .
lint-imports --no-cache  # the layer contract in .importlinter
set +e
python -m pytest -n 2 -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "test.sh: pytest collected no tests; that is a failure here" >&2
    exit 1
fi
exit "$rc"
