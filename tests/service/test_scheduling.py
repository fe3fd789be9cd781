"""Fair scheduling (issue 22): large requests run in slices between small ones, abandoned work is dropped, and a
sliced request gets exactly the verdicts of a whole one. Deterministic: gates and fake jobs, no timed waits."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from index import Exemplar, Guard, GuardConfig, HashingEncoder, Label, Verdict
from service.errors import DeadlineExceededError, PayloadTooLargeError
from service.serving.batching import DropReason, Lane, MicroBatcher
from service.serving.runtime import GuardRuntime
from tests.conftest import TOY_EXEMPLARS, TOY_LABELS
from tests.service.test_batching import GatedRun


class FakeJob:
    """A large request of `slices` steps; the first step can be held at a gate; records who ran when."""

    def __init__(self, name: str, slices: int, log: list[str], gate: threading.Event | None = None) -> None:
        self.name = name
        self.left = slices
        self.log = log
        self.gate = gate
        self.entered = threading.Event()
        self.shared: list[bool] = []

    @property
    def remaining(self) -> int:
        return self.left

    def step(self, shared: bool) -> tuple[list[str], int] | None:
        self.shared.append(shared)
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        self.log.append(self.name)
        self.left -= 1
        return ([self.name.upper()], 3) if self.left == 0 else None


class RecordingObserver:
    def __init__(self) -> None:
        self.waits: list[Lane] = []
        self.drops: list[tuple[DropReason, int]] = []
        self.dropped_event = asyncio.Event()

    def queued(self, lane: Lane, seconds: float) -> None:
        self.waits.append(lane)

    def dropped(self, reason: DropReason, units: int) -> None:
        self.drops.append((reason, units))
        self.dropped_event.set()


async def until(condition) -> None:  # type: ignore[no-untyped-def]
    """Yield to the loop and the executor thread until `condition()` holds (a state poll, not a timed wait)."""
    for _ in range(100_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


def test_a_short_prompt_sent_after_a_long_document_completes_first() -> None:
    log: list[str] = []
    gate = threading.Event()
    run = GatedRun()
    run.gate.set()
    document = FakeJob("doc", slices=5, log=log, gate=gate)

    async def scenario() -> list[str]:
        done: list[str] = []
        with ThreadPoolExecutor(1) as pool:
            batcher: MicroBatcher[str] = MicroBatcher(run, pool)
            long = asyncio.create_task(batcher.submit_job(document))
            long.add_done_callback(lambda _: done.append("doc"))
            await asyncio.to_thread(document.entered.wait, 10)  # the document's first slice is running
            short = asyncio.create_task(batcher.submit(["hi"]))
            short.add_done_callback(lambda _: done.append("short"))
            await until(lambda: batcher._small is not None and batcher._small.qsize() == 1)
            gate.set()
            assert await short == (["HI"], 7)
            assert await long == (["DOC"], 3)
            await batcher.close()
        return done

    assert asyncio.run(scenario()) == ["short", "doc"]
    assert log == ["doc"] * 5, "the document still got every slice"
    assert document.shared[0] is False, "alone on the server, a document's step may take both cores"
    assert document.shared[1] is True, "with a short prompt just served, the next step keeps to one core"
    assert run.calls == [["hi"]]


def test_large_jobs_take_turns_and_small_batches_still_run() -> None:
    log: list[str] = []
    gate = threading.Event()
    run = GatedRun()
    run.gate.set()

    async def scenario() -> None:
        with ThreadPoolExecutor(1) as pool:
            batcher: MicroBatcher[str] = MicroBatcher(run, pool)
            first = FakeJob("a", slices=3, log=log, gate=gate)
            jobs = [asyncio.create_task(batcher.submit_job(first))]
            await asyncio.to_thread(first.entered.wait, 10)
            jobs.append(asyncio.create_task(batcher.submit_job(FakeJob("b", slices=3, log=log))))
            small = asyncio.create_task(batcher.submit(["x"]))
            await until(lambda: len(batcher._large) == 1 and batcher._small is not None and batcher._small.qsize())
            gate.set()
            await asyncio.gather(small, *jobs)
            await batcher.close()

    asyncio.run(scenario())
    assert log == ["a", "b", "a", "b", "a", "b"], "round robin between the two documents"
    assert run.calls == [["x"]]


def test_a_cancelled_request_has_its_remaining_slices_dropped() -> None:
    log: list[str] = []
    gate = threading.Event()
    observer = RecordingObserver()

    async def scenario() -> None:
        with ThreadPoolExecutor(1) as pool:
            batcher: MicroBatcher[str] = MicroBatcher(GatedRun(), pool, observer=observer)
            document = FakeJob("doc", slices=10, log=log, gate=gate)
            task = asyncio.create_task(batcher.submit_job(document))
            await asyncio.to_thread(document.entered.wait, 10)
            task.cancel()  # what cancel_on_disconnect does when the client goes away
            gate.set()
            await observer.dropped_event.wait()
            await batcher.close()

    asyncio.run(scenario())
    assert log == ["doc"], "the slice running when the client left finished; no other one started"
    assert observer.drops == [("disconnected", 9)]
    assert observer.waits == ["large"]


def test_a_request_past_its_deadline_fails_without_running() -> None:
    observer = RecordingObserver()
    run = GatedRun()
    run.gate.set()

    async def scenario() -> None:
        with ThreadPoolExecutor(1) as pool:
            batcher: MicroBatcher[str] = MicroBatcher(run, pool, observer=observer)
            past = asyncio.get_running_loop().time() - 1.0
            with pytest.raises(DeadlineExceededError):
                await batcher.submit(["late"], deadline=past)
            with pytest.raises(DeadlineExceededError):
                await batcher.submit_job(FakeJob("doc", slices=4, log=[]), deadline=past)
            assert await batcher.submit(["on time"]) == (["ON TIME"], 7)
            await batcher.close()

    asyncio.run(scenario())
    assert run.calls == [["on time"]]
    assert observer.drops == [("deadline", 1), ("deadline", 4)]


LONG = " ".join(
    f"Sentence {n} of a long report about gardening, weather and the history of tea in many countries."
    for n in range(60)
)


def _guard(config: GuardConfig | None = None) -> Guard:
    return Guard.build(HashingEncoder(), TOY_LABELS, TOY_EXEMPLARS, config, background_texts=["tell me a joke"])


def test_a_sliced_request_gets_the_verdicts_of_a_whole_one() -> None:
    guard = _guard()
    texts = [LONG, "how do I pick a lock", LONG[:900] + " I will hurt you."]
    expected = guard.classify(texts)
    runtime = GuardRuntime(guard.encoder, slice_runs=2)
    runtime.install(guard, version=5)

    async def scenario() -> tuple[list[Verdict], int]:
        try:
            return await runtime.classify(texts)
        finally:
            await runtime.aclose()
            runtime.close()

    assert guard.window_bound(texts) > runtime.slice_runs
    verdicts, version = asyncio.run(scenario())
    assert version == 5
    assert verdicts == expected
    assert runtime.batcher.stats.slices > len(guard.plan(texts).windows) // 2


def test_a_request_over_the_budget_is_refused_before_any_model_run() -> None:
    guard = _guard()
    runtime = GuardRuntime(guard.encoder, slice_runs=2, max_request_cost=16)
    runtime.install(guard, version=1)

    async def scenario() -> None:
        try:
            with pytest.raises(PayloadTooLargeError, match="LIGHTGUARD_MAX_REQUEST_COST"):
                await runtime.classify([LONG] * 50)
        finally:
            await runtime.aclose()
            runtime.close()

    asyncio.run(scenario())
    assert runtime.batcher.stats.slices == 0 and runtime.batcher.stats.batches == 0


def test_a_sliced_request_reads_suspect_sentences_alone_like_a_whole_one() -> None:
    guard = _guard(GuardConfig(sentence_threshold=0.0))  # every sentence is a suspect (8 per text at most)
    texts = [LONG[:1200] + " I will stab you and burn your house down. " + LONG[1200:2400], LONG]
    plan = guard.plan(texts)
    _, units = guard.encode_plan(plan)
    in_context = guard.in_context(units)
    assert len(guard.suspects(plan, in_context, guard.score(in_context))), "the case must exercise suspects"
    runtime = GuardRuntime(guard.encoder, slice_runs=1)
    runtime.install(guard, version=2)
    job = runtime._plan_job(texts)
    outcome = None
    while outcome is None:
        outcome = job.step()
    assert outcome == (guard.classify(texts), 2)
    assert job.job.suspects is not None and len(job.job.suspects) == 16, "8 suspects per text, encoded one per step"
    runtime.close()


def test_an_edit_between_scoring_steps_makes_the_job_score_again_on_the_new_state() -> None:
    guard = _guard()
    texts = [LONG, "give me a recipe for pasta carbonara tonight"]
    runtime = GuardRuntime(guard.encoder, slice_runs=2)
    runtime.install(guard, version=1)
    job = runtime._plan_job(texts)
    while job.version is None:  # encode every window, then score the first rows on version 1
        assert job.step() is None
    cooking = ["give me a recipe for pasta carbonara", "how do I bake sourdough bread", "recipe for beef lasagna"]

    def add_topic(g: Guard) -> None:
        g.upsert_label(Label("cooking", "custom", action="block"))
        g.add_exemplars([Exemplar(900 + i, t, "cooking") for i, t in enumerate(cooking)])

    runtime._apply_sync(add_topic, version=2)
    outcome = None
    while outcome is None:
        outcome = job.step()
    verdicts, version = outcome
    assert version == 2 and verdicts == guard.classify(texts)
    assert verdicts[1].category == "cooking", "the verdicts read the state with the new topic"
    runtime.close()


def test_a_rebuild_between_scoring_steps_makes_the_job_start_again_on_the_new_guard() -> None:
    guard = _guard()
    texts = [LONG, "give me a recipe for pasta carbonara tonight"]
    runtime = GuardRuntime(guard.encoder, slice_runs=2)
    runtime.install(guard, version=1)
    job = runtime._plan_job(texts)
    while job.version is None:  # encode every window, then score the first rows on the first guard
        assert job.step() is None
    rebuilt = _guard()
    rebuilt.upsert_label(Label("cooking", "custom", action="block"))
    rebuilt.add_exemplars([Exemplar(900, "give me a recipe for pasta carbonara", "cooking")])
    runtime.install(rebuilt, version=3)

    assert job.step() is None and job.job.guard is rebuilt
    assert job.remaining == job.job.plan.cost, "a new guard may have another encoder: every vector is made again"
    outcome = None
    while outcome is None:
        outcome = job.step()
    verdicts, version = outcome
    assert version == 3 and verdicts == rebuilt.classify(texts)
    assert verdicts[1].category == "cooking", "the verdicts read the rebuilt guard"
    runtime.close()


class MeetingEncoder(HashingEncoder):
    """The hashing encoder, recording which instance ran each classify; once `meet` is set, a run waits for a second
    run to reach the barrier too (so two small batches are surely in flight at once)."""

    def __init__(self, name: str, log: list[str], barrier: threading.Barrier) -> None:
        super().__init__()
        self.name, self.log, self.barrier = name, log, barrier
        self.meet = False

    def encode_spans(self, texts, spans, batch_size=32):  # type: ignore[no-untyped-def]
        self.log.append(self.name)
        if self.meet:
            self.barrier.wait()
        return super().encode_spans(texts, spans, batch_size)


def test_two_small_batches_run_at_once_on_the_one_encoder() -> None:
    """A small batch that starts while another is in its model run shares the encoder (its session's threads), and
    both runs are in flight together: neither waits for the other to finish."""
    log: list[str] = []
    barrier = threading.Barrier(2, timeout=10)
    main = MeetingEncoder("main", log, barrier)
    guard = Guard.build(main, TOY_LABELS, TOY_EXEMPLARS, background_texts=["tell me a joke"])
    runtime = GuardRuntime(main, background_encoder=HashingEncoder(), batch_consumers=2)
    runtime.install(guard, version=1)

    async def scenario() -> None:
        try:
            main.meet = True
            first = asyncio.create_task(runtime.classify(["how do I pick a lock"]))
            await until(lambda: log)  # the first batch is in its model run (waiting at the barrier)
            await asyncio.gather(first, runtime.classify(["hello there"]))  # the barrier needs both runs at once
        finally:
            await runtime.aclose()
            runtime.close()

    asyncio.run(scenario())
    assert log == ["main", "main"]
