#!/usr/bin/env bash
# Makes sure the PostgreSQL server the integration tests use is reachable.
# On a machine of this project's kind it is started before the session; if it has stopped,
# start it again. Under CI (CI=true) a missing server is an error, never a skip:
# VPP_REQUIRE_SERVICES=1 makes the database tests fail instead of skipping.
set -uo pipefail
# port_up PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_up() {
    python - "$1" <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(1)
try:
    s.connect(("127.0.0.1", int(sys.argv[1]))); sys.exit(0)
except OSError:
    sys.exit(1)
PY
}
pg_up() { port_up 5432; }
if ! pg_up; then
    if command -v pg_ctlcluster >/dev/null 2>&1; then
        echo "services: starting PostgreSQL" >&2
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
        for _ in $(seq 1 20); do pg_up && break; sleep 0.5; done
    fi
fi
if pg_up; then
    echo "services: PostgreSQL reachable on 127.0.0.1:5432" >&2
elif [ "${CI:-}" = "true" ]; then
    echo "services: PostgreSQL is not reachable on 127.0.0.1:5432 and could not be started" >&2
    exit 1
else
    echo "services: PostgreSQL not reachable; its tests will be skipped (set VPP_REQUIRE_SERVICES=1 to fail instead)" >&2
fi

# The MQTT broker (Mosquitto) the field-device tests publish to, at 127.0.0.1:1883; the same
# rules as for PostgreSQL: started if it is not up, an error under CI when it cannot be.
mqtt_up() { port_up 1883; }
if ! mqtt_up; then
    if command -v mosquitto >/dev/null 2>&1; then
        echo "services: starting Mosquitto" >&2
        mosquitto -d -c /etc/mosquitto/mosquitto.conf || true
        for _ in $(seq 1 20); do mqtt_up && break; sleep 0.25; done
    fi
fi
if mqtt_up; then
    echo "services: MQTT broker reachable on 127.0.0.1:1883" >&2
elif [ "${CI:-}" = "true" ]; then
    echo "services: the MQTT broker is not reachable on 127.0.0.1:1883 and could not be started" >&2
    exit 1
else
    echo "services: MQTT broker not reachable; its tests will be skipped (set VPP_REQUIRE_SERVICES=1 to fail instead)" >&2
fi
"$(dirname "${BASH_SOURCE[0]}")/chromium.sh" || exit 1  # the operator page's browser tests (#19)
