"""Content-addressed cache of exemplar vectors by (encoder identity, text the encoder sees): a rebuild, a new home or
a second replica on the same host embeds only the texts it has never seen with this model.

A vector depends only on the model (weights, tokenizer, token limit) and the normalised text, so those are the key
(`encoder_key`, then a digest of the text). Only exemplar and topic-example texts go in (`embed_cached`, called by
`Guard.build` / `Guard.embed`); classify traffic never does, or the cache would grow with every prompt.

`SqliteEmbeddingCache` keeps one SQLite file in WAL mode: any number of threads and processes read at once and
writers take turns (a busy timeout, not an error), each write is one transaction, so a killed writer leaves the
rows committed before it and nothing half-written. Rows hold the float32 bytes as given (read back bit for bit).
A cache that cannot be opened or read (corrupt file, read-only disk, full disk) logs a warning and acts as empty:
the texts are embedded, never a failed build. It holds at most `max_entries` rows, evicting the least recently
used (to the day). WAL needs a local disk: do not put the file on NFS.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from index.encoding.encoder import Encoder, embed_texts, encode_in_length_order, normalized_texts
from index.encoding.onnx import OnnxEncoder
from index.types import Vectors

log = logging.getLogger(__name__)

KEY_FORMAT = 1
"""Bumped when what a key covers changes (the old rows then miss and age out)."""
DEFAULT_MAX_ENTRIES = 200_000
"""~330 MB at dim 384: the ~30k seed exemplars of six models, or of one model and 170k topic examples."""
FLUSH_ROWS = 2048
"""New vectors are written every this many, so a build killed half-way keeps what it embedded."""
MAX_FITS = 32
"""Fitted heads / IVF centroids kept (`get_fit`), least recently used evicted: each is 30 KB to a few MB."""
_CHUNK = 500  # digests per SELECT (under SQLite's oldest limit of 999 bound parameters)
_DAY = 86_400

Lookup = Callable[[int, int], None]
"""`on_lookup(hits, misses)` after each lookup (the service counts them as a metric)."""


class EmbeddingCache(Protocol):
    """Vectors by (model key, encoder input text). Implementations never raise for an unreadable store: they
    return misses and drop writes (with a warning)."""

    def get(self, model_key: str, texts: Sequence[str], dim: int) -> tuple[Vectors, NDArray[np.bool_]]:
        """(len(texts), dim) float32 rows with the cached vectors where found, and which rows were found."""
        ...

    def put(self, model_key: str, texts: Sequence[str], vectors: Vectors) -> None:
        """Store vectors of texts (rows in order); a text already stored keeps its row (vectors are deterministic)."""
        ...


def encoder_key(encoder: Encoder) -> str:
    """What a vector depends on besides the text: the model id (name, variant, graph checksum), the dimension and
    the token limit (truncation), and for an ONNX model its tokenizer's checksum, pooling, and the arithmetic around
    the graph (`OnnxEncoder.arithmetic`: the model id names only the graph's checksum)."""
    parts = [f"v{KEY_FORMAT}", encoder.model_id, f"dim={encoder.dim}", f"max_tokens={encoder.max_tokens}"]
    if isinstance(encoder, OnnxEncoder):
        manifest = encoder.manifest
        tokenizer = manifest.files.get("tokenizer.json", "none")
        parts += [f"tokenizer={tokenizer}", f"pooling={manifest.pooling}", f"normalize={manifest.normalize}"]
        parts.append(encoder.arithmetic)
    return "|".join(parts)


@dataclass(frozen=True, slots=True)
class CachedVectors:
    """Vectors of texts, how many were embedded now and how many came from the cache."""

    vectors: Vectors
    embedded: int
    cached: int


def embed_cached(
    encoder: Encoder,
    texts: Sequence[str],
    batch_size: int,
    cache: EmbeddingCache | None,
    progress: Callable[[int, int], None] | None = None,
) -> CachedVectors:
    """`embed_texts` (normalised texts, length-ordered batches) taking what `cache` holds and storing what it embeds;
    with no cache, `embed_texts` itself.

    A text repeated in `texts` is embedded once. `progress(done, total)` counts distinct texts, cached ones as done.
    """
    if cache is None:
        return CachedVectors(embed_texts(encoder, texts, batch_size, progress), len(texts), 0)
    clean = normalized_texts(texts)
    key = encoder_key(encoder)
    position = {text: n for n, text in enumerate(dict.fromkeys(clean))}
    unique = list(position)
    vectors, hit = cache.get(key, unique, encoder.dim)
    missing = [n for n in range(len(unique)) if not hit[n]]
    found = len(unique) - len(missing)
    # length order, as embed_texts batches; stored every FLUSH_ROWS so a build killed half-way keeps its work
    order = sorted(missing, key=lambda n: len(unique[n]))
    step = max(batch_size, FLUSH_ROWS // batch_size * batch_size)
    for start in range(0, len(order), step):
        rows = order[start : start + step]
        before = found + start

        def report(done: int, _: int, before: int = before) -> None:
            if progress is not None:
                progress(before + done, len(unique))

        vectors[rows] = encode_in_length_order(encoder, [unique[n] for n in rows], batch_size, report)
        cache.put(key, [unique[n] for n in rows], vectors[rows])
    if progress is not None and not missing:
        progress(len(unique), len(unique))
    rows_of = [position[text] for text in clean]
    out = vectors if len(unique) == len(clean) else vectors[rows_of]
    cached = sum(1 for r in rows_of if hit[r])
    return CachedVectors(out, len(clean) - cached, cached)


def text_key(text: str) -> bytes:
    """16-byte BLAKE2b digest of a text (UTF-8; lone surrogates passed through, as Python strings may hold them)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class SqliteEmbeddingCache:
    """`EmbeddingCache` in one SQLite file (WAL), safe for several threads and processes (see the module doc)."""

    def __init__(
        self,
        path: Path,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        on_lookup: Lookup | None = None,
        busy_timeout_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`path`: the file (its folder is created); `max_entries`: rows kept, least recently used evicted first;
        `clock`: seconds since the epoch (tests pass their own to order uses)."""
        self.path = Path(path)
        self.max_entries = max(1, max_entries)
        self.on_lookup = on_lookup
        self._busy_ms = int(busy_timeout_s * 1000)
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._broken: str | None = None

    # ------------------------------------------------------------------ protocol
    def get(self, model_key: str, texts: Sequence[str], dim: int) -> tuple[Vectors, NDArray[np.bool_]]:
        out = np.zeros((len(texts), dim), dtype=np.float32)
        hit = np.zeros(len(texts), dtype=np.bool_)
        digests = [text_key(t) for t in texts]
        rows_of: dict[bytes, list[int]] = {}
        for n, d in enumerate(digests):
            rows_of.setdefault(d, []).append(n)
        size = dim * 4
        stale: list[bytes] = []
        now = int(self._clock())
        try:
            with self._lock:
                conn = self._connect()
                if conn is not None:
                    model = self._model_id(conn, model_key, create=False)
                    keys = list(rows_of)
                    for start in range(0, len(keys) if model is not None else 0, _CHUNK):
                        chunk = keys[start : start + _CHUNK]
                        marks = ",".join("?" * len(chunk))
                        for digest, blob, used in conn.execute(
                            f"SELECT digest, vector, used FROM vectors WHERE model = ? AND digest IN ({marks})",
                            (model, *chunk),
                        ):
                            if len(blob) != size:  # another dimension under the same key: treat as absent
                                continue
                            row = np.frombuffer(blob, dtype="<f4")
                            for n in rows_of[digest]:
                                out[n] = row
                                hit[n] = True
                            if used < now - _DAY:
                                stale.append(digest)
                    if stale and model is not None:
                        self._touch(conn, model, stale, now)
        except (sqlite3.Error, OSError) as exc:
            self._disable(exc)
            hit[:] = False
            out[:] = 0
        if self.on_lookup is not None:
            hits = int(hit.sum())
            self.on_lookup(hits, len(texts) - hits)
        return out, hit

    def put(self, model_key: str, texts: Sequence[str], vectors: Vectors) -> None:
        if len(texts) != len(vectors):
            raise ValueError(f"{len(texts)} texts and {len(vectors)} vectors")
        if not len(texts):
            return
        rows = np.ascontiguousarray(vectors, dtype="<f4")
        now = int(self._clock())
        try:
            with self._lock:
                conn = self._connect()
                if conn is None:
                    return
                with _writing(conn):  # one transaction: all rows or none
                    model = self._model_id(conn, model_key, create=True)
                    conn.executemany(
                        "INSERT OR IGNORE INTO vectors (model, digest, vector, used) VALUES (?, ?, ?, ?)",
                        [(model, text_key(t), rows[n].tobytes(), now) for n, t in enumerate(texts)],
                    )
                    self._prune(conn)
        except (sqlite3.Error, OSError) as exc:
            self._disable(exc)

    # ------------------------------------------------------------------ fits (index.fits.FitCache)
    def get_fit(self, key: bytes) -> bytes | None:
        """The bytes of a deterministic fit stored under `key` (`index.fits`), None when absent or unreadable."""
        try:
            with self._lock:
                conn = self._connect()
                if conn is None:
                    return None
                row = conn.execute("SELECT data FROM fits WHERE key = ?", (key,)).fetchone()
                if row is not None:
                    # the use time orders eviction only: a busy writer elsewhere must not fail a read
                    with contextlib.suppress(sqlite3.OperationalError), conn:
                        conn.execute("UPDATE fits SET used = ? WHERE key = ?", (int(self._clock()), key))
                return None if row is None else bytes(row[0])
        except (sqlite3.Error, OSError) as exc:
            self._disable(exc)
            return None

    def put_fit(self, key: bytes, data: bytes) -> None:
        """Store a fit's bytes under `key` (replacing what was there), keeping the newest `MAX_FITS`."""
        try:
            with self._lock:
                conn = self._connect()
                if conn is None:
                    return
                with _writing(conn):
                    conn.execute(
                        "INSERT OR REPLACE INTO fits (key, data, used) VALUES (?, ?, ?)",
                        (key, data, int(self._clock())),
                    )
                    conn.execute(
                        "DELETE FROM fits WHERE key NOT IN (SELECT key FROM fits ORDER BY used DESC LIMIT ?)",
                        (MAX_FITS,),
                    )
        except (sqlite3.Error, OSError) as exc:
            self._disable(exc)

    # ------------------------------------------------------------------ reading it as an operator
    def count(self) -> int:
        """Rows held (0 when the file cannot be read)."""
        try:
            with self._lock:
                conn = self._connect()
                return 0 if conn is None else int(conn.execute("SELECT count(*) FROM vectors").fetchone()[0])
        except (sqlite3.Error, OSError) as exc:
            self._disable(exc)
            return 0

    @property
    def broken(self) -> str | None:
        """Why the cache is off in this process (it was unreadable), None while it works."""
        return self._broken

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    # ------------------------------------------------------------------ internals (callers hold self._lock)
    def _connect(self) -> sqlite3.Connection | None:
        if self._broken is not None:
            return None
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        # a connection never crosses a fork: a child opens its own
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self._busy_ms / 1000, check_same_thread=False, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            # a new file only: 8 KB pages hold five 1.5 KB vectors (4 KB pages two, with a third of the page unused)
            conn.execute("PRAGMA page_size = 8192")
            _retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL"), self._busy_ms / 1000)
            conn.execute("PRAGMA synchronous = NORMAL")  # a power cut may lose the last writes, never corrupt
            with _writing(conn):
                conn.execute("CREATE TABLE IF NOT EXISTS models (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE)")
                # a rowid table: WITHOUT ROWID stores rows this large (1.5 KB) in overflow pages, ~4.7 KB each
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS vectors (model INTEGER NOT NULL, digest BLOB NOT NULL,"
                    " vector BLOB NOT NULL, used INTEGER NOT NULL, UNIQUE (model, digest))"
                )
                conn.execute("CREATE INDEX IF NOT EXISTS vectors_used ON vectors (used)")
                # results of deterministic fits by a digest of their inputs (index.fits): heads, IVF centroids
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS fits (key BLOB PRIMARY KEY, data BLOB NOT NULL, used INTEGER NOT NULL)"
                )
        except BaseException:
            conn.close()
            raise
        # the connection is used from the caller's threads, one at a time (self._lock)
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _model_id(self, conn: sqlite3.Connection, key: str, create: bool) -> int | None:
        if create:
            conn.execute("INSERT OR IGNORE INTO models (key) VALUES (?)", (key,))
        row = conn.execute("SELECT id FROM models WHERE key = ?", (key,)).fetchone()
        return None if row is None else int(row[0])

    def _touch(self, conn: sqlite3.Connection, model: int, digests: list[bytes], now: int) -> None:
        # best effort: eviction order only; a busy writer elsewhere must not fail a read
        try:
            with _writing(conn):
                conn.executemany(
                    "UPDATE vectors SET used = ? WHERE model = ? AND digest = ?", [(now, model, d) for d in digests]
                )
        except sqlite3.OperationalError as exc:
            log.debug("embedding cache %s: use times not updated (%s)", self.path, exc)

    def _prune(self, conn: sqlite3.Connection) -> None:
        count = int(conn.execute("SELECT count(*) FROM vectors").fetchone()[0])
        if count <= self.max_entries:
            return
        # down to 90 %, so that the next writes do not prune again at once
        drop = count - self.max_entries * 9 // 10
        conn.execute(
            "DELETE FROM vectors WHERE (model, digest) IN (SELECT model, digest FROM vectors ORDER BY used LIMIT ?)",
            (drop,),
        )
        log.info(
            "embedding cache %s: evicted %d least recently used vectors (max %d)", self.path, drop, self.max_entries
        )

    def _disable(self, exc: Exception) -> None:
        if self._broken is None:
            log.warning(
                "embedding cache %s unusable (%s): embedding every text instead; delete the file (and its -wal and"
                " -shm files) to start a new cache",
                self.path,
                exc,
            )
        self._broken = str(exc)
        if self._conn is not None and self._pid == os.getpid():
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
        self._conn = None


@contextlib.contextmanager
def _writing(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, begun IMMEDIATE: the write lock is taken (waiting up to the busy timeout) before the
    first read, so a transaction never has to upgrade a read snapshot another process has written past meanwhile,
    which SQLite refuses at once with "database is locked" whatever the busy timeout (the connection is in
    autocommit mode, where `with conn:` alone would begin no transaction at all)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.rollback()
        raise
    conn.commit()


def _retry_busy(step: Callable[[], object], timeout_s: float) -> None:
    """`step()`, again while another process holds the lock it needs and `timeout_s` has not passed: switching a
    new file to WAL takes an exclusive lock without calling the busy handler."""
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
