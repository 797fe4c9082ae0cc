"""API keys with roles, stored hashed (PBKDF2-SHA256 with a per-key salt).

A key reads ``vpp_<key id>_<secret>``: the key id finds the row, the secret is checked
against the stored hash. Verified keys are cached for a short time so a busy reader does not
pay for PBKDF2 on every request; revoking a key clears the cache of this process.

Roles and what they may do: ``viewer`` reads; ``operator`` reads, ingests telemetry,
confirms or declines DR events and asks for a cycle; ``utility`` reads and creates, updates
and cancels DR events; ``admin`` may do everything, including keys and runtime settings.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from enum import StrEnum

from fastapi import HTTPException, Request
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from vpp.store import repo

ITERATIONS = 120_000
CACHE_TTL_S = 30.0


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    UTILITY = "utility"
    ADMIN = "admin"


class Perm(StrEnum):
    READ = "read"
    OPERATE = "operate"
    DR_WRITE = "dr_write"
    ADMIN = "admin"


GRANTS: dict[Role, frozenset[Perm]] = {
    Role.VIEWER: frozenset({Perm.READ}),
    Role.OPERATOR: frozenset({Perm.READ, Perm.OPERATE}),
    Role.UTILITY: frozenset({Perm.READ, Perm.DR_WRITE}),
    Role.ADMIN: frozenset(Perm),
}


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role

    def may(self, perm: Perm) -> bool:
        return perm in GRANTS[self.role]


def _digest(secret: str, salt: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", secret.encode(), bytes.fromhex(salt), ITERATIONS).hex()


def create_key(engine: Engine, name: str, role: Role | str) -> str:
    """Create a key and return it; only its hash is stored, so this is the one time it is
    seen. Raises ValueError when the name is taken or the role unknown."""
    role = Role(role)
    if not name or len(name) > 100:
        raise ValueError("key name: 1 to 100 characters")
    key_id, secret, salt = secrets.token_hex(8), secrets.token_urlsafe(24), secrets.token_hex(16)
    with engine.begin() as conn:
        if repo.key_by_name(conn, name) is not None:
            raise ValueError(f"an API key named {name!r} exists already")
        repo.insert_key(conn, name, role.value, key_id, salt, _digest(secret, salt))
    return f"vpp_{key_id}_{secret}"


def ensure_key(engine: Engine, name: str, role: Role, key: str) -> bool:
    """Store a given key (e.g. from ``VPP_ADMIN_KEY``) under ``name`` unless that name exists;
    True when it was stored now."""
    key_id, secret = _split(key)
    if key_id is None:
        key_id, secret = hashlib.sha256(key.encode()).hexdigest()[:16], key
    salt = secrets.token_hex(16)
    with engine.begin() as conn:
        if repo.key_by_name(conn, name) is not None:
            return False
        repo.insert_key(conn, name, role.value, key_id, salt, _digest(secret, salt))
    return True


def _split(key: str) -> tuple[str | None, str]:
    if key.startswith("vpp_") and len(key) > 22 and key[20] == "_":
        return key[4:20], key[21:]
    return None, key


class KeyChecker:
    """Finds the principal of a presented key (with a short cache of verified keys)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def cached(self, key: str) -> Principal | None:
        """The principal of a key verified in the last ``CACHE_TTL_S`` seconds, else None."""
        hit = self._cache.get(hashlib.sha256(key.encode()).hexdigest())
        if hit and time.monotonic() - hit[0] < CACHE_TTL_S:
            return hit[1]
        return None

    def check(self, key: str) -> Principal | None:
        fp = hashlib.sha256(key.encode()).hexdigest()
        now = time.monotonic()
        hit = self._cache.get(fp)
        if hit and now - hit[0] < CACHE_TTL_S:
            return hit[1]
        key_id, secret = _split(key)
        if key_id is None:
            key_id = hashlib.sha256(key.encode()).hexdigest()[:16]
        with self.engine.connect() as conn:
            row = repo.key_by_id(conn, key_id)
        if row is None or row["revoked"]:
            return None
        if not hmac.compare_digest(_digest(secret, row["salt"]), row["hash"]):
            return None
        p = Principal(row["name"], Role(row["role"]))
        with self._lock:
            self._cache[fp] = (now, p)
        return p


def presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return request.headers.get("x-api-key") or None


def require(perm: Perm):
    """A FastAPI dependency: 401 without a valid key, 403 when its role lacks ``perm``."""

    async def dep(request: Request) -> Principal:
        # Async: a cached key costs no thread hop; a new one is verified in the threadpool.
        key = presented_key(request)
        if not key:
            raise HTTPException(
                401,
                "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        checker = request.app.state.keys
        p = checker.cached(key) or await run_in_threadpool(checker.check, key)
        if p is None:
            raise HTTPException(
                401, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"}
            )
        request.state.principal = p
        if not p.may(perm):
            raise HTTPException(
                403, f"key {p.name!r} has role {p.role.value}, which may not {perm.value}"
            )
        return p

    dep.__name__ = f"require_{perm.value}"
    return dep
