#!/usr/bin/env bash
# The main job on its embedded defaults. Extra arguments go to the `vpp` command line;
# with none, it runs the controller on the demo park (see README).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
if [ "$#" -eq 0 ]; then
    set -- dispatch --config configs/parks/demo.yaml --at 2026-07-15T08:00
fi
exec vpp "$@"
