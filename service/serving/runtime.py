"""The live guard: an immutable (guard, version) snapshot behind a read/write lock, the micro-batcher, the executor.

Classification holds the read lock for its whole call, so the version it reports is the version of the state it
used (a micro-batch is one such call, so every request in it reports that version); edits take the write lock only
for the short in-memory change (encoding happens before) and bump the version in the same critical section.
`edit_lock` serialises every change to topics and every rebuild.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, TypeVar

import numpy as np
from numpy.typing import NDArray

from index import (
    ClassifyJob,
    ClassifyPlan,
    CostLimitError,
    Encoder,
    Guard,
    Verdict,
    set_flat_search_blas_from,
    set_search_threads,
)
from service.errors import IndexNotReadyError, PayloadTooLargeError
from service.serving.batching import MicroBatcher, SchedulerObserver

T = TypeVar("T")
Status = Literal["loading", "building", "ready", "failed"]


class ReadWriteLock:
    """Many readers or one writer; a waiting writer blocks new readers (so edits cannot starve)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


@dataclass(frozen=True, slots=True)
class GuardSnapshot:
    guard: Guard
    version: int
    built_at: datetime
    model_id: str


@dataclass(slots=True)
class RuntimeStatus:
    state: Status = "loading"
    error: str | None = None
    rebuilding: bool = False
    # (texts embedded, texts to embed) of a rebuild asked for through the API, while it embeds; None otherwise
    build_progress: tuple[int, int] | None = None
    openai_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)


class GuardRuntime:
    """Holds the serving guard; swaps it atomically; runs CPU work off the event loop."""

    def __init__(
        self,
        encoder: Encoder,
        workers: int = 2,
        batch_max_texts: int = 64,
        batch_wait_ms: float = 2.0,
        search_threads: int = 1,
        max_request_cost: int = 1024,
        slice_runs: int = 4,
        observer: SchedulerObserver | None = None,
        background_encoder: Encoder | None = None,
        batch_consumers: int = 1,
    ) -> None:
        """`max_request_cost`: most model runs one classify call may take (see `classify`); `slice_runs`: model runs
        per step of a large request, and the most a request may cost to be micro-batched whole;
        `background_encoder`: the same model on one thread, for large requests (default: `encoder`);
        `batch_consumers`: small batches run at once (`MicroBatcher.small_consumers`), on `encoder`'s one session
        (a second copy for the second batch was 5-7 % slower once spinning stopped with each run:
        docs/performance.md)."""
        self.encoder = encoder
        self.background_encoder = background_encoder or encoder
        self.status = RuntimeStatus()
        self.edit_lock = asyncio.Lock()
        self.max_request_cost = max(1, max_request_cost)
        self.slice_runs = max(1, slice_runs)
        self._rw = ReadWriteLock()
        self._snapshot: GuardSnapshot | None = None
        self._executor = search_executor(max(workers, batch_consumers + 1), search_threads, "lightguard-classify")
        # Pricing a large request (tokenising it) runs beside the encoder, one request at a time, so that neither a
        # small request nor another large one waits for a 10 MB body to be tokenised.
        self._planner = ThreadPoolExecutor(1, thread_name_prefix="lightguard-plan")
        self._ready = threading.Event()
        self.batcher: MicroBatcher[Verdict] = MicroBatcher(
            self._classify_sync, self._executor, batch_max_texts, batch_wait_ms / 1000, observer, batch_consumers
        )

    def configure_batching(self, max_texts: int, wait_ms: float) -> None:
        """Batch limits from the settings (the context builds the runtime before the app applies them)."""
        self.batcher.max_texts = max(1, max_texts)
        self.batcher.max_wait_s = max(0.0, wait_ms / 1000)

    @property
    def snapshot(self) -> GuardSnapshot | None:
        return self._snapshot

    @property
    def version(self) -> int:
        snap = self._snapshot
        return snap.version if snap is not None else 0

    def require(self) -> GuardSnapshot:
        snap = self._snapshot
        if snap is None:
            detail = self.status.error or "the index is still loading; poll GET /readyz until it returns 200"
            raise IndexNotReadyError(detail)
        return snap

    async def classify(self, texts: Sequence[str], deadline: float | None = None) -> tuple[list[Verdict], int]:
        """Verdicts and the index version they were computed on (one consistent state).

        A request that surely has at most `slice_runs` windows (by its length, without tokenising:
        `Guard.window_bound`) is micro-batched with other small ones; any other is priced by tokenising it (off the
        event loop, beside the encoder) and run as a `SlicedClassify` on the large-request lane, beside the small
        batches. `deadline` is on the event loop's clock.

        Raises:
            PayloadTooLargeError: the request needs more than `max_request_cost` model runs.
            DeadlineExceededError: the deadline passed before the work was done.
        """
        snap = self.require()
        texts = list(texts)
        bound = snap.guard.window_bound(texts)
        if bound <= self.slice_runs:
            return await self.batcher.submit(texts, deadline, bound)
        planning = self._planner.submit(self._plan_job, texts)
        try:
            job = await asyncio.wrap_future(planning)
        except asyncio.CancelledError:  # the client went away while its request was being priced
            planning.add_done_callback(functools.partial(self._dropped_while_planning, bound))
            raise
        return await self.batcher.submit_job(job, deadline)

    def _dropped_while_planning(self, bound: int, planning: Future[SlicedClassify]) -> None:
        """Count a request abandoned before its first model run: its plan's cost, or its length bound if it was
        never planned."""
        if planning.cancelled():
            self.batcher.observer.dropped("disconnected", bound)
        elif planning.exception() is None:
            self.batcher.observer.dropped("disconnected", planning.result().remaining)

    def _plan_job(self, texts: list[str]) -> SlicedClassify:
        guard = self.require().guard
        try:
            plan = guard.plan(texts, self.max_request_cost)
        except CostLimitError as exc:
            raise PayloadTooLargeError(
                f"classifying this request needs at least {exc.cost} model runs (one run reads a window of up to"
                f" {guard.config.window_tokens} tokens, 250-400 characters of English); the limit is {exc.limit}"
                " per request (LIGHTGUARD_MAX_REQUEST_COST): split it into several requests, each with fewer or"
                " shorter texts"
            ) from exc
        return SlicedClassify(self, guard, plan, texts)

    def read_live(self, guard: Guard, version: int | None, read: Callable[[], T]) -> tuple[T, int] | GuardSnapshot:
        """`read()` under the read lock and the index version it saw, if `guard` is the live guard at `version` (at
        any version when None); else the live snapshot, without calling `read`: an edit bumped the version, or a
        rebuild replaced the guard (perhaps with another encoder)."""
        with self._rw.read():
            snap = self.require()
            if snap.guard is guard and version in (None, snap.version):
                return read(), snap.version
            return snap

    def _classify_sync(self, texts: list[str]) -> tuple[list[Verdict], int]:
        # Beside a large request's step (on the other core), a small batch keeps to one core too: a two-thread run
        # would wait for its second thread on the core the large step holds.
        encoder = self.background_encoder if self.batcher.large_running else None
        with self._rw.read():
            snap = self.require()
            return snap.guard.classify(texts, encoder), snap.version

    async def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        guard = self.require().guard
        return await asyncio.to_thread(guard.embed, list(texts))

    async def apply(self, change: Callable[[Guard], T], version: int) -> T:
        """Run `change` on the live guard under the write lock and publish `version` with it.

        If `change` raises, the version is not bumped (the library's edits are all-or-nothing).
        """
        return await asyncio.to_thread(self._apply_sync, change, version)

    def _apply_sync(self, change: Callable[[Guard], T], version: int) -> T:
        with self._rw.write():
            snap = self.require()
            result = change(snap.guard)
            self._snapshot = GuardSnapshot(snap.guard, version, snap.built_at, snap.model_id)
            return result

    def install(self, guard: Guard, version: int, built_at: datetime | None = None) -> None:
        """Swap in a new guard (after a build or a load)."""
        with self._rw.write():
            self._snapshot = GuardSnapshot(guard, version, built_at or datetime.now(UTC), guard.encoder.model_id)
            self.status.state = "ready"
            self.status.error = None
        self._ready.set()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    async def aclose(self) -> None:
        """Stop the micro-batcher (queued requests fail); call before `close`."""
        await self.batcher.close()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._planner.shutdown(wait=False, cancel_futures=True)


class SlicedClassify:
    """A large classify request as a `SlicedJob`: an `index.ClassifyJob` (encode windows, score sentences, pick and
    encode suspects, score, decide), one step per call, on the live guard.

    Encoding steps take `slice_runs` model runs each and no lock; the steps that read the guard's state run under
    the runtime's read lock (`GuardRuntime.read_live`) and must all see one index version: if an edit lands in
    between, scoring starts again (`ClassifyJob.rescore`); if a rebuild replaced the guard, the job starts again
    from a new plan (`ClassifyJob.restart`). The verdicts equal `Guard.classify` on that state, and report its
    version.
    """

    def __init__(self, runtime: GuardRuntime, guard: Guard, plan: ClassifyPlan, texts: list[str]) -> None:
        self._runtime = runtime
        self._texts = texts
        self.job = ClassifyJob(guard, plan)
        self.version: int | None = None  # the index version the job's reads saw; None before the first

    @property
    def remaining(self) -> int:
        """Model runs not done yet (`ClassifyJob.remaining`)."""
        return self.job.remaining

    def step(self, shared: bool = False) -> tuple[list[Verdict], int] | None:
        """One step; `shared`: encode on the runtime's one-thread encoder, leaving the other core to small requests."""
        job = self.job
        if not job.needs_guard:
            job.encode(self._runtime.slice_runs, self._runtime.background_encoder if shared else None)
            return None
        live = self._runtime.read_live(job.guard, self.version, job.read)
        if isinstance(live, GuardSnapshot):
            self.version = None
            if live.guard is job.guard:
                job.rescore()
            else:
                job.restart(live.guard, live.guard.plan(self._texts))
            return None
        verdicts, self.version = live
        return None if verdicts is None else (verdicts, self.version)


# From this many queries on, FAISS's flat search uses one BLAS matrix product instead of one pass over the vectors
# per query (FAISS 1.15's default is 128000, i.e. never): a micro-batch of 16 queries over 24k exemplars then reads
# the vectors once, not 16 times. docs/performance.md has the measurements.
FLAT_BLAS_MIN_QUERIES = 4


def configure_threads(search_threads: int) -> None:
    """Pin FAISS's OpenMP pool (in the calling thread) and its flat-search strategy (process-wide), and numpy's BLAS
    to one thread (process-wide), at start-up.

    One thread by default: a single-query search is memory-bound, and a second spinning OpenMP thread contends
    with ONNX Runtime's threads on a 2-core box (48 ms instead of 6 ms per search measured under load). numpy's
    OpenBLAS starts one thread per core; its products here are small (a topic head's 385×385 solve, scoring a
    batch), and its spinning threads stalled behind ONNX Runtime's: one head fit took 1.4 s with them and 50 ms
    with one thread on the loaded 2-core machine (docs/topics.md, add-topic latency).
    """
    from threadpoolctl import threadpool_limits

    set_search_threads(search_threads)
    set_flat_search_blas_from(FLAT_BLAS_MIN_QUERIES)
    threadpool_limits(limits=1, user_api="blas")


def search_executor(workers: int, search_threads: int, name: str) -> ThreadPoolExecutor:
    """A thread pool whose threads search with `search_threads` OpenMP threads: OpenMP keeps that setting per
    thread, and a thread started later begins with one OpenMP thread per core (`index.set_search_threads`)."""
    return ThreadPoolExecutor(
        max_workers=workers, thread_name_prefix=name, initializer=set_search_threads, initargs=(search_threads,)
    )
