"""Back-off for failed authentication: a bound on how much work a wrong key can cost.

Each identity (a client address, or the key id of a real key) may fail ``burst`` times; the
attempt that reaches ``burst`` locks it for ``base_s``, and every attempt admitted after a lock
has run out doubles the lock, up to ``max_s``. While locked, attempts are refused (429 with
``Retry-After``) before the database is read or a hash computed, and do not lengthen the lock.
An identity with no attempt for ``forget_s`` starts afresh.

An attempt is counted when it is admitted, before its outcome is known, so a burst of
concurrent requests cannot all slip in before the first failure is recorded; a successful
verification gives its attempt back. Pure bookkeeping on a monotonic clock: no I/O.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

# Per client address: a person or a gateway with a mistyped key retries for minutes without
# being locked; key ids that do not exist (no hash to compute, one indexed read) count here.
CLIENT_BURST = 30
# Per real key id: each admitted attempt costs one PBKDF2 hash (about 0.1 s of a core).
KEY_BURST = 5
LOCK_BASE_S = 1.0
LOCK_MAX_S = 300.0
FORGET_S = 900.0
MAX_IDENTITIES = 10_000  # least recently seen forgotten first: memory stays bounded


@dataclass
class _Record:
    failures: int = 0
    locked_until_s: float = 0.0
    last_s: float = 0.0


class FailureLimiter:
    """Counts failed attempts per identity and answers how long an identity must wait.

    Parameters
    ----------
    burst : int
        Attempts admitted before the first lock.
    base_s, max_s : float
        First lock and the longest lock (s); locks double in between.
    forget_s : float
        An identity idle this long (s) is forgotten.
    max_identities : int
        At most this many identities are tracked; the least recently seen go first.
    clock : callable
        Monotonic seconds (injected by tests).
    """

    def __init__(
        self,
        burst: int,
        base_s: float = LOCK_BASE_S,
        max_s: float = LOCK_MAX_S,
        forget_s: float = FORGET_S,
        max_identities: int = MAX_IDENTITIES,
        clock: Callable[[], float] = time.monotonic,
    ):
        if burst < 1 or base_s <= 0 or max_s < base_s:
            raise ValueError("burst >= 1 and 0 < base_s <= max_s")
        self.burst, self.base_s, self.max_s, self.forget_s = burst, base_s, max_s, forget_s
        self.max_identities, self.clock = max_identities, clock
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._lock = threading.Lock()

    def admit(self, ident: str) -> float:
        """Count an attempt of ``ident``: 0.0 when admitted, else the seconds it must wait."""
        now = self.clock()
        with self._lock:
            r = self._records.get(ident)
            if r is None or now - r.last_s > self.forget_s:
                r = self._records[ident] = _Record()
            self._records.move_to_end(ident)
            while len(self._records) > self.max_identities:
                self._records.popitem(last=False)
            if now < r.locked_until_s:
                return r.locked_until_s - now
            r.failures += 1
            r.last_s = now
            if r.failures >= self.burst:
                lock_s = self.base_s * 2.0 ** min(r.failures - self.burst, 60)
                r.locked_until_s = now + min(lock_s, self.max_s)
            return 0.0

    def succeeded(self, ident: str) -> None:
        """Give back the attempt ``admit`` counted: it was not a failure."""
        with self._lock:
            r = self._records.get(ident)
            if r is None:
                return
            r.failures = max(r.failures - 1, 0)
            if r.failures < self.burst:
                r.locked_until_s = 0.0

    def wait_s(self, ident: str) -> float:
        """Seconds ``ident`` must wait before its next attempt (0.0: none)."""
        with self._lock:
            r = self._records.get(ident)
            return 0.0 if r is None else max(r.locked_until_s - self.clock(), 0.0)


class RateLimitedError(Exception):
    """Too many failed attempts: retry after ``retry_after_s`` seconds."""

    def __init__(self, scope: str, retry_after_s: float):
        super().__init__(f"too many failed API key attempts ({scope}); retry after")
        self.scope, self.retry_after_s = scope, retry_after_s


@dataclass
class AuthLimits:
    """The two limiters of one API: per client address and per key id."""

    client: FailureLimiter
    key: FailureLimiter

    @classmethod
    def default(cls) -> AuthLimits:
        return cls(FailureLimiter(CLIENT_BURST), FailureLimiter(KEY_BURST))

    def admit_client(self, client: str) -> None:
        """Count an attempt from ``client``; raises :class:`RateLimitedError` when it must wait."""
        wait = self.client.admit(client)
        if wait > 0:
            raise RateLimitedError("client", wait)

    def admit_key(self, key_id: str) -> None:
        """Count an attempt on a real key id; raises :class:`RateLimitedError` when it must wait."""
        wait = self.key.admit(key_id)
        if wait > 0:
            raise RateLimitedError("key", wait)
