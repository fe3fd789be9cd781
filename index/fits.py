"""Content-addressed results of the deterministic fits of a build (the linear head, the IVF index's k-means): keyed
by a digest of everything the fit reads, so a new home or a rebuild whose built-in exemplars did not change takes
the result instead of refitting (issue 19: the head alone was ~65 s of a ~100 s warm start on a loaded 2-core
machine). A hit returns the bytes that were stored, so the fit's output is the same bit for bit."""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)

Arrays = dict[str, NDArray[np.generic]]


@runtime_checkable
class FitCache(Protocol):
    """Bytes by key (`fit_key`). Implementations never raise for an unreadable store: a miss, a dropped write."""

    def get_fit(self, key: bytes) -> bytes | None: ...

    def put_fit(self, key: bytes, data: bytes) -> None: ...


def fit_key(kind: str, *parts: object) -> bytes:
    """A digest of a fit's kind and inputs: arrays by dtype, shape and bytes, anything else by its repr."""
    h = hashlib.blake2b(kind.encode(), digest_size=20)
    for part in parts:
        if isinstance(part, np.ndarray):
            arr = np.ascontiguousarray(part)
            h.update(f"|{arr.dtype.str}{arr.shape}|".encode())
            h.update(arr.tobytes())
        else:
            h.update(f"|{part!r}".encode())
    return h.digest()


def cached_fit(cache: object | None, key: bytes, fit: Callable[[], Arrays]) -> Arrays:
    """`fit()`'s arrays, from `cache` when it holds `key` (and is a `FitCache`), else computed and stored."""
    if not isinstance(cache, FitCache):
        return fit()
    data = cache.get_fit(key)
    if data is not None:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as stored:
                return {name: stored[name] for name in stored.files}
        except (OSError, ValueError) as exc:  # a damaged row: fit again (and store the fit over it)
            log.warning("cached fit %s unreadable (%s): fitting again", key.hex()[:12], exc)
    arrays = fit()
    out = io.BytesIO()
    named: dict[str, Any] = dict(arrays)  # np.savez's stubs take **kwds as its own keyword arguments
    np.savez(out, **named)
    cache.put_fit(key, out.getvalue())
    return arrays
