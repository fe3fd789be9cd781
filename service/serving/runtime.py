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
from datetime import datetime
from typing import Literal, TypeVar

import numpy as np
from numpy.typing import NDArray

from index import ClassifyPlan, CostLimitError, Encoder, Guard, Scores, Verdict
from service.db.models import utcnow
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
    ) -> None:
        """`max_request_cost`: most model runs one classify call may take (see `classify`); `slice_runs`: model runs
        per step of a large request, and the most a request may cost to be micro-batched whole;
        `background_encoder`: the same model on one thread, for large requests (default: `encoder`)."""
        self.encoder = encoder
        self.background_encoder = background_encoder or encoder
        self.status = RuntimeStatus()
        self.edit_lock = asyncio.Lock()
        self.max_request_cost = max(1, max_request_cost)
        self.slice_runs = max(1, slice_runs)
        self._rw = ReadWriteLock()
        self._snapshot: GuardSnapshot | None = None
        self._executor = search_executor(workers, search_threads, "lightguard-classify")
        # Pricing a large request (tokenising it) runs beside the encoder, one request at a time, so that neither a
        # small request nor another large one waits for a 10 MB body to be tokenised.
        self._planner = ThreadPoolExecutor(1, thread_name_prefix="lightguard-plan")
        self._ready = threading.Event()
        self.batcher: MicroBatcher[Verdict] = MicroBatcher(
            self._classify_sync, self._executor, batch_max_texts, batch_wait_ms / 1000, observer
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

    def _on_live_guard(self, job: SlicedClassify, read: Callable[[Guard], T]) -> tuple[T, int] | None:
        """`read(guard)` under the read lock and the index version it saw, if the live state is the one the job's
        earlier scoring steps saw; else None, and the job rewinds: to scoring (an edit bumped the version: its
        vectors still hold) or to planning (a rebuild replaced the guard, perhaps with another encoder)."""
        with self._rw.read():
            snap = self.require()
            if snap.guard is job.guard and job.version in (None, snap.version):
                job.version = snap.version
                return read(snap.guard), snap.version
            replaced = snap.guard is not job.guard
        if replaced:
            job.restart(snap.guard)
        else:
            job.rescore()
        return None

    def _classify_sync(self, texts: list[str]) -> tuple[list[Verdict], int]:
        # beside a large request's step (on the other core), a small batch keeps to one core too: a two-thread run
        # would wait for its second thread on the core the large step holds
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
            self._snapshot = GuardSnapshot(guard, version, built_at or utcnow(), guard.encoder.model_id)
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


SCORE_ROWS = 64
"""Rows (windows, sentences) scored per step of a sliced request: one search of 64 queries, a few milliseconds, so
that a long document's scoring (a 100,000-character one has ~250 windows and ~900 sentences) does not hold up short
prompts any more than its encoding does."""


class SlicedClassify:
    """A large classify request as a `SlicedJob`, in steps of bounded work:

    1. encode `slice_runs` windows per step (no lock: vectors depend only on the guard's encoder);
    2. score the in-context sentences `SCORE_ROWS` at a time and pick the suspects (`Guard.suspects`);
    3. encode the suspects alone, `slice_runs` per step;
    4. score the windows and suspects `SCORE_ROWS` at a time; 5. the verdicts (`Guard.verdicts`).

    Steps 2, 4 and 5 read the live guard under the runtime's read lock (`GuardRuntime._on_live_guard`) and must all
    see one index version: if an edit lands in between, scoring starts again at step 2; if a rebuild replaced the
    guard, the job starts again from its plan. The verdicts equal `Guard.classify` on that state.
    """

    def __init__(self, runtime: GuardRuntime, guard: Guard, plan: ClassifyPlan, texts: list[str]) -> None:
        self._runtime = runtime
        self._texts = texts
        self.restart(guard, plan)

    def restart(self, guard: Guard, plan: ClassifyPlan | None = None) -> None:
        self.guard = guard
        self.plan = plan if plan is not None else guard.plan(self._texts)
        dim = guard.encoder.dim
        self._vectors: NDArray[np.float32] = np.zeros((len(self.plan.windows), dim), dtype=np.float32)
        self._unit_vectors: list[NDArray[np.float32]] = [np.zeros((0, dim), dtype=np.float32)] * len(self.plan.units)
        self._encoded = 0
        self._in_context: NDArray[np.float32] | None = None
        self.rescore()

    def rescore(self) -> None:
        """Forget every score (they were read from an index state that is gone); the vectors stay."""
        self.version: int | None = None
        self._unit_parts: list[Scores] = []
        self._suspects: NDArray[np.intp] | None = None
        self._alone: list[NDArray[np.float32]] = []
        self._rows: NDArray[np.float32] | None = None  # the windows' and the suspects' vectors, once all are in
        self._window_parts: list[Scores] = []

    @property
    def remaining(self) -> int:
        """Model runs not done yet (windows, then the suspects' bound until they are picked)."""
        windows = len(self.plan.windows) - self._encoded
        if self._suspects is None:
            return windows + self.plan.suspect_bound
        return windows + len(self._suspects) - sum(len(a) for a in self._alone)

    def step(self, shared: bool = False) -> tuple[list[Verdict], int] | None:
        """One step; `shared`: encode on the runtime's one-thread encoder, leaving the other core to small requests."""
        plan, runs = self.plan, self._runtime.slice_runs
        encoder = self.guard.same_model(self._runtime.background_encoder if shared else None)
        if self._encoded < len(plan.windows):  # 1
            stop = min(self._encoded + runs, len(plan.windows))
            vectors, units = self.guard.encode_plan(plan, self._encoded, stop, encoder)
            self._vectors[self._encoded : stop] = vectors
            self._unit_vectors[self._encoded : stop] = units
            self._encoded = stop
            return None
        if self._suspects is None:  # 2
            if self._in_context is None:
                self._in_context = self.guard.in_context(self._unit_vectors)
            in_context = self._in_context
            scored = sum(len(p.unsafe) for p in self._unit_parts)
            if self.guard.reads_sentences(plan) and scored < len(in_context):
                part = self._runtime._on_live_guard(self, lambda g: g.score(in_context[scored : scored + SCORE_ROWS]))
                if part is not None:
                    self._unit_parts.append(part[0])
                return None
            unit_scores = Scores.concat(self._unit_parts) if self._unit_parts else None
            picked = self._runtime._on_live_guard(self, lambda g: g.suspects(plan, in_context, unit_scores))
            if picked is not None:
                self._suspects = picked[0]
            return None
        done = sum(len(a) for a in self._alone)
        if done < len(self._suspects):  # 3
            texts = [plan.unit_texts[i] for i in self._suspects[done : done + runs]]
            self._alone.append(encoder.encode(texts, batch_size=self.guard.config.batch_size))
            return None
        if self._rows is None:
            self._rows = np.concatenate([self._vectors, *self._alone], axis=0)
        rows = self._rows
        scored = sum(len(p.unsafe) for p in self._window_parts)
        if scored < len(rows):  # 4
            part = self._runtime._on_live_guard(self, lambda g: g.score(rows[scored : scored + SCORE_ROWS]))
            if part is not None:
                self._window_parts.append(part[0])
            return None
        suspects, scores = self._suspects, Scores.concat(self._window_parts)
        return self._runtime._on_live_guard(self, lambda g: g.verdicts(plan, scores, suspects))  # 5


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
    import faiss
    from threadpoolctl import threadpool_limits

    set_search_threads(search_threads)
    faiss.cvar.distance_compute_blas_threshold = FLAT_BLAS_MIN_QUERIES
    threadpool_limits(limits=1, user_api="blas")


def set_search_threads(search_threads: int) -> None:
    """FAISS's OpenMP thread count for the calling thread.

    OpenMP keeps this setting per thread: a thread started later (an executor's worker) begins with the default of
    one OpenMP thread per core, whatever the main thread set. Every thread that searches must call this; the
    executors below do it in their initializer.
    """
    import faiss

    faiss.omp_set_num_threads(max(1, search_threads))


def search_executor(workers: int, search_threads: int, name: str) -> ThreadPoolExecutor:
    """A thread pool whose threads search with `search_threads` OpenMP threads (see `set_search_threads`)."""
    return ThreadPoolExecutor(
        max_workers=workers, thread_name_prefix=name, initializer=set_search_threads, initargs=(search_threads,)
    )
