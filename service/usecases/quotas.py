"""Per-key rate and concurrency limits of the classify routes (rates: the `limits` library's moving window).

A key's own limits (columns of `api_keys`, NULL: the defaults from the settings) apply to every request made with
it; without keys configured, every caller is the one `anonymous` caller. Rates count texts (a request of 64 texts
takes 64), concurrency counts requests in flight. The counters live where `LIGHTGUARD_RATE_LIMIT_STORAGE` says:
per process by default (with N workers or replicas a key can get up to N times its rate; concurrency is always per
process), or in Redis, shared by every process that names it. If that storage fails, requests are let through and
the failure is logged: a guardrail that refuses all traffic because its quota store is down is an outage.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from service.errors import InvalidRequestError, RateLimitedError
from service.metrics import Metrics

log = logging.getLogger(__name__)
UNLIMITED = "none"
_NO_LIMIT = {"", UNLIMITED, "unlimited"}


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """A key's own limits; None: the service default."""

    rate_limit: str | None = None
    max_concurrency: int | None = None


class ProcessMemoryStorage(MemoryStorage):
    """`limits`' in-process storage (memory://) without its expiry thread.

    MemoryStorage drops expired entries on a `threading.Timer` of 10 ms that it starts again whenever the last one
    has run, so under steady traffic a thread started on the event loop every 10 ms: 8 single-prompt clients lost
    10-25 % of their throughput once a rate limit was set (docs/performance.md). Here the
    caller drops them itself, at most once every `EXPIRE_EVERY_S`. The moving window reads entries by their
    timestamps, so an expired entry never counts; dropping them only bounds memory.
    """

    EXPIRE_EVERY_S = 1.0

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: str) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.timer.cancel()  # the one the constructor started
        self._next_expiry = 0.0

    # MemoryStorage calls `self.__schedule_expiry()` before every change: this is that name, mangled, overridden
    def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now >= self._next_expiry:
            self._next_expiry = now + self.EXPIRE_EVERY_S
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=256)
def parse_rate(value: str) -> tuple[RateLimitItem, ...]:
    """The rate limits in `value` (`limits` notation, `;`-separated); () for `none`.

    Raises:
        InvalidRequestError: not in that notation.
    """
    if value.strip().lower() in _NO_LIMIT:
        return ()
    try:
        return tuple(parse_many(value))
    except ValueError as exc:
        raise InvalidRequestError(
            f"rate limit {value!r} is not valid: write an amount per period like `100/second`, `5000/minute` or"
            " `100/second;100000/day` (or `none` for unlimited)",
            "rate_limit",
        ) from exc


class Quotas:
    """Admits classify requests per caller against their rate and concurrency limits."""

    def __init__(
        self,
        default_rate: str | None,
        default_concurrency: int | None,
        storage_uri: str = "memory://",
        metrics: Metrics | None = None,
    ) -> None:
        self._default_rate = parse_rate(default_rate or UNLIMITED)
        self._default_concurrency = default_concurrency
        self._storage = (
            ProcessMemoryStorage() if storage_uri.split(":", 1)[0] == "memory" else storage_from_string(storage_uri)
        )
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._metrics = metrics
        self._inflight: dict[str, int] = {}

    def close(self) -> None:
        """Close the storage's connections (a Redis client; memory storage holds none)."""
        client = getattr(self._storage, "storage", None)  # limits keeps its Redis client there
        close = getattr(client, "close", None)
        if callable(close):
            close()

    @contextmanager
    def admit(self, key_id: int | None, limits: KeyLimits | None, texts: int) -> Iterator[None]:
        """Hold one of the caller's concurrency slots and take `texts` from its rates for the block's duration.

        Raises:
            RateLimitedError: over the rate (Retry-After: when the window frees enough) or the concurrency limit.
            InvalidRequestError: the request alone holds more texts than a rate allows per period.
        """
        who = "anonymous" if key_id is None else str(key_id)
        limits = limits or KeyLimits()
        rates = parse_rate(limits.rate_limit) if limits.rate_limit is not None else self._default_rate
        concurrency = limits.max_concurrency if limits.max_concurrency is not None else self._default_concurrency
        if concurrency is not None and self._inflight.get(who, 0) >= concurrency:
            self._refuse(who, "concurrency")
            raise RateLimitedError(
                f"this key already has {concurrency} requests in flight, its limit (the key's max_concurrency, or"
                " LIGHTGUARD_MAX_CONCURRENCY); wait for one to finish",
                1,
            )
        self._take(who, rates, texts)
        self._inflight[who] = self._inflight.get(who, 0) + 1
        try:
            yield
        finally:
            left = self._inflight[who] - 1
            if left:
                self._inflight[who] = left
            else:
                del self._inflight[who]

    def _take(self, who: str, rates: tuple[RateLimitItem, ...], texts: int) -> None:
        for item in rates:
            if texts > item.amount:
                raise InvalidRequestError(
                    f"the request holds {texts} texts, more than this key's rate limit allows in any period ({item});"
                    " split it into smaller requests",
                    "texts",
                )
        try:
            blocked = next((item for item in rates if not self._limiter.test(item, who, cost=texts)), None)
            if blocked is None:
                for item in rates:
                    self._limiter.hit(item, who, cost=texts)
                return
            reset = self._limiter.get_window_stats(blocked, who).reset_time
        except Exception:  # the storage is down: let the request through (see the module docstring)
            log.exception("rate-limit storage failed; the request is let through")
            return
        self._refuse(who, "rate")
        raise RateLimitedError(
            f"this key is over its rate limit of {blocked} texts (the key's rate_limit, or LIGHTGUARD_RATE_LIMIT);"
            " retry after the Retry-After seconds",
            math.ceil(reset - time.time()),
        )

    def _refuse(self, who: str, limit: str) -> None:
        if self._metrics is not None:
            self._metrics.rate_limited.labels(key=who, limit=limit).inc()
