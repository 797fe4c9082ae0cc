"""API keys with roles, stored hashed (PBKDF2-SHA256 with a per-key salt).

A key reads ``vpp_<key id>_<secret>``: the key id finds the row, the secret is checked
against the stored hash. Verified keys are cached so a busy reader does not pay for PBKDF2 on
every request; a cached key's row is read again at most every ``recheck_s`` (1 s by default,
``VPP_KEY_RECHECK_S``), so a key revoked by any process (``vpp db revoke-key``, the API of
another instance) is refused within that, and at once in the process that revoked it. A read
on every request (the first design) cost the setpoint readers 4.7x their throughput and a
38 ms median while a cycle wrote: the read waits on the cycle's transaction. Failed
attempts back off per client and per key id (:mod:`api.auth_limits`): at most a handful of
hashes per key id, then 429 with ``Retry-After``; one hash at a time per process.

Roles and what they may do: ``viewer`` reads; ``operator`` reads, ingests telemetry,
confirms or declines DR events and asks for a cycle; ``utility`` reads and creates, updates
and cancels DR events; ``admin`` may do everything, including keys and runtime settings.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from api.auth_limits import AuthLimits, RateLimitedError
from vpp.store import repo

ITERATIONS = 120_000
# A verified key is trusted this long without hashing again; revocation does not wait for
# it (every request reads the key's row). Bounded: only keys that verified enter.
CACHE_TTL_S = 3600.0
CACHE_MAX_KEYS = 1000


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


def _key_id(key: str) -> tuple[str, str]:
    """The key id and the secret of a presented key (a key without the ``vpp_`` form, as
    ``VPP_ADMIN_KEY`` may be, is found by a digest of itself)."""
    key_id, secret = _split(key)
    if key_id is None:
        key_id = hashlib.sha256(key.encode()).hexdigest()[:16]
    return key_id, secret


@dataclass
class _Verified:
    key_id: str
    principal: Principal
    at_s: float
    checked_s: float  # when its row was last read: not revoked then


class KeyChecker:
    """Finds the principal of a presented key.

    Verified keys are cached (by a SHA-256 of the key, so a cached key costs no PBKDF2 and
    no rate limiting); a cached key's row is read again (one indexed read by ``key_id``) at
    most every ``recheck_s``, so a key revoked by any process is refused within it.
    A key not in the cache is admitted by ``limits`` first (per client, then per key id),
    then verified in a worker thread, at most one verification at a time in this process.

    Parameters
    ----------
    engine : Engine
        The database holding ``api_keys``.
    limits : AuthLimits, optional
        The back-off for failed attempts; the defaults of :mod:`api.auth_limits` if None.
    metrics : Metrics, optional
        Where refusals are counted (``vpp_auth_refused``).
    """

    def __init__(
        self,
        engine: Engine,
        limits: AuthLimits | None = None,
        metrics=None,
        recheck_s: float = 1.0,
    ):
        self.engine = engine
        self.recheck_s = recheck_s
        self.limits = limits or AuthLimits.default()
        self.metrics = metrics
        self._cache: dict[str, _Verified] = {}
        self._lock = threading.Lock()
        self._verifying: anyio.CapacityLimiter | None = None

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def refused(self, reason: str) -> None:
        """Count a refused authentication (``missing``, ``invalid``, ``revoked``,
        ``rate_limited``)."""
        if self.metrics is not None:
            self.metrics.auth_refused.labels(reason).inc()

    async def authenticate(self, key: str, client: str) -> Principal | None:
        """The principal of ``key`` presented by ``client``, None when unknown or revoked.
        Raises :class:`RateLimitedError` when the client or the key id must wait."""
        fp = hashlib.sha256(key.encode()).hexdigest()
        hit = self._cache.get(fp)
        now_s = time.monotonic()
        if hit is not None and now_s - hit.at_s < CACHE_TTL_S:
            if now_s - hit.checked_s < self.recheck_s:
                return hit.principal
            if await run_in_threadpool(self._active, hit.key_id):
                hit.checked_s = time.monotonic()
                return hit.principal
            with self._lock:
                self._cache.pop(fp, None)
            self.refused("revoked")
            return None
        if self._verifying is None:  # created in the event loop, on first use
            self._verifying = anyio.CapacityLimiter(1)
        try:
            p = await anyio.to_thread.run_sync(
                self._verify, key, fp, client, limiter=self._verifying
            )
        except RateLimitedError:
            self.refused("rate_limited")
            raise
        if p is None:
            self.refused("invalid")
        return p

    def _active(self, key_id: str) -> bool:
        with self.engine.connect() as conn:
            row = repo.key_by_id(conn, key_id)
        return row is not None and not row["revoked"]

    def _verify(self, key: str, fp: str, client: str) -> Principal | None:
        """Admit, read the row, hash (worker thread); a success gives the attempts back."""
        key_id, secret = _key_id(key)
        self.limits.admit_client(client)
        with self.engine.connect() as conn:
            row = repo.key_by_id(conn, key_id)
        if row is None or row["revoked"]:
            return None  # no hash computed: counted against the client only
        self.limits.admit_key(key_id)
        if not hmac.compare_digest(_digest(secret, row["salt"]), row["hash"]):
            return None
        self.limits.client.succeeded(client)
        self.limits.key.succeeded(key_id)
        p = Principal(row["name"], Role(row["role"]))
        with self._lock:
            if len(self._cache) >= CACHE_MAX_KEYS:
                self._cache.clear()
            now_s = time.monotonic()
            self._cache[fp] = _Verified(key_id, p, now_s, now_s)
        return p


def presented_key(request: Request) -> str | None:
    return key_in(request.headers)


def key_in(headers: Mapping[str, str]) -> str | None:
    """The key of ``Authorization: Bearer <key>``, else of ``X-API-Key``; None if neither."""
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return headers.get("x-api-key") or None


def client_of(scope) -> str:
    """The client address of an ASGI scope (the peer; proxies' headers are not trusted)."""
    client = scope.get("client")
    return client[0] if client else "unknown"


# Declared for the OpenAPI document (the Authorize button); presented_key() reads the key.
API_KEY_HEADER = APIKeyHeader(name="X-API-Key", scheme_name="ApiKey", auto_error=False)
BEARER = HTTPBearer(scheme_name="Bearer", auto_error=False)
UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def require(perm: Perm):
    """A FastAPI dependency: 401 without a valid key, 403 when its role lacks ``perm``, 429
    (``Retry-After``) after too many failed attempts from the client or on the key id."""

    async def dep(
        request: Request,
        _key: Annotated[str | None, Security(API_KEY_HEADER)],
        _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
    ) -> Principal:
        key = presented_key(request)
        checker: KeyChecker = request.app.state.keys
        if not key:
            checker.refused("missing")
            raise HTTPException(
                401,
                "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                headers=UNAUTHORIZED,
            )
        try:
            p = await checker.authenticate(key, client_of(request.scope))
        except RateLimitedError as exc:
            retry = max(math.ceil(exc.retry_after_s), 1)
            raise HTTPException(
                429,
                f"too many failed API key attempts ({exc.scope}); retry after {retry} s",
                headers={"Retry-After": str(retry)},
            ) from None
        if p is None:
            raise HTTPException(401, "unknown or revoked API key", headers=UNAUTHORIZED)
        request.state.principal = p
        if not p.may(perm):
            raise HTTPException(
                403, f"key {p.name!r} has role {p.role.value}, which may not {perm.value}"
            )
        return p

    dep.__name__ = f"require_{perm.value}"
    return dep
