"""Charge point authentication: OCPP Security Profile 1 (HTTP basic auth on the WebSocket
upgrade; user name = the charge point's identity, password = its AuthorizationKey).

Profile 1 sends the key in clear: use it on a loopback or a closed park network (a VLAN of
the chargers, a VPN), never across the internet; Profiles 2 and 3 (TLS) need a TLS
terminator in front of the central system, outside this module.

The keys file (``field_devices.ocpp.keys_file``, YAML) holds, per station, a salted SHA-256
of its key, never the key itself::

    stations:
      CP-001: "sha256$6b1f...$9a2c..."   # salt (hex) $ digest (hex)

A key is 20 random bytes as 40 hex characters (the AuthorizationKey length OCPP 1.6's
security whitepaper allows is 16-40 bytes); one hash is enough for a key of that entropy,
so a reconnect storm of 500 stations costs 500 hashes (microseconds each).
``python -m vpp.drivers.ocpp_auth STATION...`` prints a new key and its line for each.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import sys
from http import HTTPStatus
from pathlib import Path

import yaml

from vpp.park.config import ConfigError

PATH_PREFIX = "/ocpp/"


def hash_key(key: str, salt: bytes | None = None) -> str:
    """The keys file's entry for ``key``: ``sha256$SALT$DIGEST`` (hex)."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.sha256(salt + key.encode()).hexdigest()
    return f"sha256${salt.hex()}${digest}"


def verify(key: str, entry: str) -> bool:
    """True when ``key`` matches the keys file's ``entry`` (constant-time compare)."""
    try:
        algo, salt_hex, digest = entry.split("$")
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        return False
    if algo != "sha256":
        return False
    got = hashlib.sha256(salt + key.encode()).hexdigest()
    return hmac.compare_digest(got, digest)


def load_keys(path: str | Path) -> dict[str, str]:
    """Station id -> entry, validated (errors name the file and the field path)."""
    p = Path(path)
    label = str(Path(*p.parts[-2:]))
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError([f"{label}: cannot read the OCPP keys file ({exc})"]) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("stations"), dict):
        raise ConfigError([f"{label}: stations: expected a mapping of station id to key hash"])
    problems = []
    for sid, entry in raw["stations"].items():
        if not isinstance(entry, str) or entry.count("$") != 2 or not entry.startswith("sha256$"):
            problems.append(f"{label}: stations.{sid}: expected 'sha256$SALT$DIGEST'")
    if problems:
        raise ConfigError(problems)
    return {str(k): v for k, v in raw["stations"].items()}


def station_of(path: str) -> str | None:
    """The charge point id of a request path ``/ocpp/{id}`` (None otherwise)."""
    if not path.startswith(PATH_PREFIX):
        return None
    sid = path[len(PATH_PREFIX) :].split("?")[0]
    return sid if sid and "/" not in sid else None


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


def make_process_request(keys: dict[str, str] | None, on_refused=None):
    """A websockets ``process_request`` hook: the path must be ``/ocpp/{id}``; with ``keys``
    (auth basic), the basic-auth user must be that id and the password its key.
    ``on_refused(station, reason)`` is told of every refusal."""

    def process_request(connection, request):
        sid = station_of(request.path)
        if sid is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "expected /ocpp/{charge point id}\n")
        if keys is None:
            return None
        cred = basic_credentials(request.headers.get("Authorization"))
        reason = None
        if cred is None:
            reason = "no basic credentials"
        elif cred[0] != sid:
            reason = f"user {cred[0]!r} is not the station in the path"
        elif sid not in keys or not verify(cred[1], keys[sid]):
            reason = "unknown station or wrong key"
        if reason is None:
            return None
        if on_refused is not None:
            on_refused(sid, reason)
        resp = connection.respond(HTTPStatus.UNAUTHORIZED, "unauthorized\n")
        resp.headers["WWW-Authenticate"] = 'Basic realm="park-vpp OCPP", charset="UTF-8"'
        return resp

    return process_request


def basic_header(station: str, key: str) -> str:
    """The Authorization header value a charge point sends (for clients and tests)."""
    return "Basic " + base64.b64encode(f"{station}:{key}".encode()).decode()


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m vpp.drivers.ocpp_auth STATION...", file=sys.stderr)
        return 2
    print("# give each station its key (AuthorizationKey); put the lines in the keys file")
    print("stations:")
    for sid in argv:
        key = secrets.token_hex(20)
        print(f'  {sid}: "{hash_key(key)}"   # key: {key}')
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
