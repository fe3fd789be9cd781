"""Fair scheduling of classify work: small requests are micro-batched, large ones run in slices beside them.

Two consumer tasks, one per lane, each runs one step at a time on the executor, so a small batch and a slice of a
large request run side by side (on two cores: the runtime gives large requests an encoder of their own on one
thread):

- **Small requests** (a few model runs) are gathered into one guard call: the consumer takes whatever small
  requests are queued when the previous batch finishes, so an idle server adds no wait to a lone request, and under
  load a request waits at most one batch. `max_wait_s` > 0 additionally lingers that long for more requests, but
  only while traffic is concurrent (the previous batch held more than one request), so a sequential client never
  pays it. The linger also ends once the batch holds as many requests as the largest of the last `RECENT_BATCHES`
  batches: N clients that each wait for their answer before sending again return within a millisecond or two of
  each other, and once all N are in, waiting out the rest of `max_wait_s` only idles the encoder (8 such clients:
  492 vs 451 prompts/s, medians of six alternating runs, docs/performance.md). A request is never split across
  batches; a batch stops growing once it holds `max_texts` model runs (one per short text).
- **Large requests** (a long document, a big batch) are `SlicedJob`s run one bounded step at a time, the jobs
  taking turns (round robin): a short prompt never waits for a document, and documents share their lane fairly.
  A step keeps to one core while small requests are being served (`shared`), and takes both when none came for
  `SHARED_FOR_S`: a batch of 64 prompts alone on the server runs as fast as before.

Work whose client went away (its future was cancelled) or whose deadline passed is dropped before its next step;
`SchedulerObserver` hears about queue waits and dropped work (the service's /metrics).

Consistency: a small batch runs in one `run` call, which (see service/serving/runtime.py) reads one guard snapshot
under the read lock, so every verdict reports the index version of the state that produced it; a sliced job checks
that all its scoring steps saw one version (service/serving/runtime.py, `SlicedClassify`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Generic, Literal, Protocol, TypeVar

from service.errors import DeadlineExceededError

R = TypeVar("R")
RECENT_BATCHES = 8  # the linger expects as many requests as the largest of this many previous batches
SHARED_FOR_S = 0.1
"""Large requests keep to one core while a small batch ran this recently: a sequential client's next prompt comes a
few milliseconds after its last answer, and should not find both cores taken."""
BatchRun = Callable[[list[str]], tuple[list[R], int]]
Lane = Literal["small", "large"]
DropReason = Literal["disconnected", "deadline"]


class SlicedJob(Protocol[R]):
    """A large request, run one bounded step at a time in the executor."""

    @property
    def remaining(self) -> int:
        """Model runs still to do (what is dropped if the job is abandoned now)."""
        ...

    def step(self, shared: bool) -> tuple[list[R], int] | None:
        """Do the next slice of work; the results and index version once the job is complete, else None.

        `shared`: small requests are being served too, so the step should keep to one core."""
        ...


class SchedulerObserver(Protocol):
    def queued(self, lane: Lane, seconds: float) -> None:
        """A request waited `seconds` from submission to its first step."""

    def dropped(self, reason: DropReason, units: int) -> None:
        """`units` model runs of a request were not done: its client went away or its deadline passed."""


class _NoObserver:
    def queued(self, lane: Lane, seconds: float) -> None:
        pass

    def dropped(self, reason: DropReason, units: int) -> None:
        pass


@dataclass(slots=True, eq=False)
class _Pending(Generic[R]):
    texts: list[str]
    future: asyncio.Future[tuple[list[R], int]] = field(repr=False)
    submitted: float
    deadline: float | None
    cost: int
    job: SlicedJob[R] | None = None
    started: bool = False

    @property
    def units(self) -> int:
        return self.job.remaining if self.job is not None else self.cost


@dataclass(slots=True)
class BatchStats:
    """Counters for the bench and /metrics: batches run, requests and texts they held, slices of large jobs."""

    batches: int = 0
    requests: int = 0
    texts: int = 0
    largest: int = 0
    slices: int = 0


class MicroBatcher(Generic[R]):
    """Runs `submit`ted small requests in batches (`run`: texts → (results, version)) and `submit_job`ted large
    ones in slices, all on `executor`, one step at a time."""

    def __init__(
        self,
        run: BatchRun[R],
        executor: Executor,
        max_texts: int = 64,
        max_wait_s: float = 0.0,
        observer: SchedulerObserver | None = None,
        small_consumers: int = 1,
    ) -> None:
        self._run = run
        self._executor = executor
        self.max_texts = max(1, max_texts)
        self.max_wait_s = max(0.0, max_wait_s)
        self.observer: SchedulerObserver = observer or _NoObserver()
        self.stats = BatchStats()
        self._small: asyncio.Queue[_Pending[R]] | None = None
        self._large: deque[_Pending[R]] = deque()
        self._large_waiting: asyncio.Event | None = None
        self._consumers: list[asyncio.Task[None]] = []
        self._concurrent = False
        self._small_seen = -SHARED_FOR_S  # loop time a small batch last started or ended
        self.large_running = False  # a large request's step is on the executor
        self._recent: deque[int] = deque(maxlen=RECENT_BATCHES)  # requests per batch, newest last
        # Small batches in flight at once, each on an executor thread: with 2, one batch's Python (planning,
        # deciding) overlaps another's model runs (LIGHTGUARD_BATCH_CONSUMERS, docs/performance.md). The executor
        # needs a thread per consumer besides the large lane's.
        self.small_consumers = max(1, small_consumers)

    async def submit(
        self, texts: list[str], deadline: float | None = None, cost: int | None = None
    ) -> tuple[list[R], int]:
        """Results for `texts` (in order) and the index version they were computed on.

        `cost`: the request's model runs (at most), which a batch counts against `max_texts`; default one per text.

        `deadline`: the event loop's clock (`loop.time()`) after which the request fails with DeadlineExceededError
        instead of being started (a batch that has started runs to its end: it is short).
        """
        pending = self._enqueue(texts, deadline, None, len(texts) if cost is None else cost)
        assert self._small is not None
        self._small.put_nowait(pending)
        return await pending.future

    async def submit_job(self, job: SlicedJob[R], deadline: float | None = None) -> tuple[list[R], int]:
        """Run a large request slice by slice, in turn with other work; its results and index version."""
        pending = self._enqueue([], deadline, job, job.remaining)
        self._large.append(pending)
        return await pending.future

    def _enqueue(self, texts: list[str], deadline: float | None, job: SlicedJob[R] | None, cost: int) -> _Pending[R]:
        loop = asyncio.get_running_loop()
        if self._small is None or self._large_waiting is None or any(c.done() for c in self._consumers):
            for consumer in self._consumers:
                consumer.cancel()
            self._small, self._large_waiting = asyncio.Queue(), asyncio.Event()
            self._large.clear()
            self._consumers = [
                *(
                    loop.create_task(self._consume_small(self._small), name=f"lightguard-small-requests-{n}")
                    for n in range(self.small_consumers)
                ),
                loop.create_task(self._consume_large(self._large_waiting), name="lightguard-large-requests"),
            ]
        if job is not None:
            self._large_waiting.set()
        return _Pending(texts, loop.create_future(), loop.time(), deadline, cost, job)

    async def close(self) -> None:
        """Stop the consumers; requests still queued fail with CancelledError."""
        for consumer in self._consumers:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
        if self._small is not None:
            while not self._small.empty():
                self._small.get_nowait().future.cancel()
        while self._large:
            self._large.popleft().future.cancel()

    async def _consume_small(self, small: asyncio.Queue[_Pending[R]]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather(small)
            if batch:
                self._small_seen = float("inf")  # running: shared until it ends
                try:
                    await self._run_small(batch)
                finally:
                    self._small_seen = loop.time()

    async def _consume_large(self, waiting: asyncio.Event) -> None:
        while True:
            if not self._large:
                waiting.clear()
                await waiting.wait()
                continue
            await self._slice(self._large.popleft())

    def _abandoned(self, pending: _Pending[R], now: float) -> bool:
        """True (and the request settled) if its client went away or its deadline passed; work left is dropped."""
        if pending.future.done():
            self.observer.dropped("disconnected", pending.units)
            return True
        if pending.deadline is not None and now >= pending.deadline:
            self.observer.dropped("deadline", pending.units)
            pending.future.set_exception(
                DeadlineExceededError(f"the request passed its deadline after {now - pending.submitted:.2f} s")
            )
            return True
        return False

    def _start(self, pending: _Pending[R], lane: Lane, now: float) -> None:
        if not pending.started:
            pending.started = True
            self.observer.queued(lane, now - pending.submitted)

    async def _slice(self, pending: _Pending[R]) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._abandoned(pending, now):
            return
        assert pending.job is not None
        self._start(pending, "large", now)
        self.stats.slices += 1
        try:
            shared = now - self._small_seen < SHARED_FOR_S or bool(self._small is not None and self._small.qsize())
            self.large_running = True
            try:
                outcome = await loop.run_in_executor(self._executor, pending.job.step, shared)
            finally:
                self.large_running = False
        except asyncio.CancelledError:
            pending.future.cancel()
            raise
        except Exception as exc:  # a bad text, or the index went away: the request fails, nothing else does
            if not pending.future.done():
                pending.future.set_exception(exc)
            return
        if outcome is None:
            self._large.append(pending)  # round robin: its next slice comes after the other large jobs'
        elif not pending.future.done():
            pending.future.set_result(outcome)

    async def _run_small(self, batch: list[_Pending[R]]) -> None:
        loop = asyncio.get_running_loop()
        try:
            outcomes = await loop.run_in_executor(self._executor, self._run_batch, [p.texts for p in batch])
        except BaseException as exc:  # cancelled at shutdown, or the executor is gone
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
            raise
        for pending, outcome in zip(batch, outcomes, strict=True):
            if pending.future.done():  # the client went away
                continue
            if isinstance(outcome, BaseException):
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(outcome)

    async def _gather(self, queue: asyncio.Queue[_Pending[R]]) -> list[_Pending[R]]:
        loop = asyncio.get_running_loop()
        pending = await queue.get()
        batch: list[_Pending[R]] = []
        size = 0
        linger_end = loop.time() + (self.max_wait_s if self._concurrent else 0.0)
        expected = max(self._recent, default=1)
        while True:
            now = loop.time()
            if not self._abandoned(pending, now):
                self._start(pending, "small", now)
                batch.append(pending)
                size += pending.cost
            if size >= self.max_texts:
                break
            try:
                pending = queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = linger_end - loop.time()
                if not batch or remaining <= 0 or len(batch) >= expected:
                    break
                try:
                    pending = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    break
        if not batch:
            return batch
        self._concurrent = len(batch) > 1 or not queue.empty()
        self._recent.append(len(batch))
        self.stats.batches += 1
        self.stats.requests += len(batch)
        self.stats.texts += sum(len(p.texts) for p in batch)
        self.stats.largest = max(self.stats.largest, size)
        return batch

    def _run_batch(self, requests: list[list[str]]) -> list[tuple[list[R], int] | Exception]:
        """Runs in the executor: one call for the whole batch; on failure, each request alone (errors stay theirs)."""
        if len(requests) == 1:
            return [self._run_one(requests[0])]
        flat = [text for texts in requests for text in texts]
        try:
            results, version = self._run(flat)
        except Exception:
            # One bad request (e.g. a text empty after normalisation) must not fail its neighbours, and its error
            # message must count texts within its own request.
            return [self._run_one(texts) for texts in requests]
        out: list[tuple[list[R], int] | Exception] = []
        start = 0
        for texts in requests:
            out.append((results[start : start + len(texts)], version))
            start += len(texts)
        return out

    def _run_one(self, texts: list[str]) -> tuple[list[R], int] | Exception:
        try:
            return self._run(texts)
        except Exception as exc:
            return exc
