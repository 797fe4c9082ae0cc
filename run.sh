#!/usr/bin/env bash
# The main job on its embedded defaults: the controller service on the simulated demo park,
# with SQLite under var/ and the API on 127.0.0.1:8000 (Ctrl-C stops it after the running
# cycle). Extra arguments go to the `vpp` command line instead (see README).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
if [ "$#" -eq 0 ]; then
    set -- run --config configs/parks/demo.yaml
fi
exec vpp "$@"
