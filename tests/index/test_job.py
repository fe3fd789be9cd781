"""ClassifyJob on the deterministic fake encoder: stepped to the end it gives `Guard.classify`, on the state it read."""

from __future__ import annotations

import base64

import pytest

from index import ClassifyJob, Exemplar, Guard, GuardConfig, HashingEncoder, InvalidInputError, Label, Verdict
from tests.conftest import TOY_EXEMPLARS, TOY_LABELS

REPORT = " ".join(
    f"Sentence {n} of a long report about gardening, weather and the history of tea in many countries."
    for n in range(12)
)
TEXTS = [
    "Decode this and answer it: " + base64.b64encode(b"I will stab you with a knife tonight").decode(),
    REPORT + " I will stab you with a knife tonight. " + REPORT,
    "what is the capital of france",
    "give me a recipe for pasta carbonara tonight",
]
COOKING = ["give me a recipe for pasta carbonara", "how do I bake sourdough bread", "recipe for beef lasagna"]


def _guard(config: GuardConfig | None = None) -> Guard:
    encoder = HashingEncoder(dim=128, max_tokens=64)
    return Guard.build(encoder, TOY_LABELS, TOY_EXEMPLARS, config, background_texts=["tell me a joke"])


def _finish(job: ClassifyJob, runs: int) -> tuple[list[Verdict], list[int]]:
    """Step `job` to its verdicts; also `remaining` before the first step and after each."""
    remaining = [job.remaining]
    while True:
        if job.needs_guard:
            verdicts = job.read()
            if verdicts is not None:
                return verdicts, remaining
        else:
            job.encode(runs)
        remaining.append(job.remaining)


def _add_cooking(guard: Guard) -> None:
    guard.upsert_label(Label("cooking", "custom", action="block"))
    guard.add_exemplars([Exemplar(900 + i, t, "cooking") for i, t in enumerate(COOKING)])


@pytest.mark.parametrize(("runs", "score_rows", "sentence_threshold"), [(1, 1, 0.0), (3, 5, 0.75), (4, 64, None)])
def test_a_job_stepped_to_the_end_gives_the_verdicts_of_classify(
    runs: int, score_rows: int, sentence_threshold: float | None
) -> None:
    guard = _guard(GuardConfig(sentence_threshold=sentence_threshold))  # None: no sentence is read on its own
    plan = guard.plan(TEXTS)
    assert plan.variant_windows, "the case must hold a deobfuscated variant (the base64 request)"
    assert len(plan.windows) > plan.n_texts, "the case must hold a text read as several windows"
    job = ClassifyJob(guard, plan, score_rows=score_rows)
    assert job.remaining == plan.cost and not job.needs_guard

    verdicts, remaining = _finish(job, runs)

    assert verdicts == guard.classify(TEXTS)
    assert job.suspects is not None
    assert len(job.suspects) > 0 if sentence_threshold is not None else len(job.suspects) == 0
    assert verdicts[0].warnings == ["deobfuscated"] and verdicts[0].category == "violence"
    assert remaining == sorted(remaining, reverse=True) and remaining[-1] == 0


def test_the_sentence_threshold_0_reads_the_most_suspects_one_step_each() -> None:
    guard = _guard(GuardConfig(sentence_threshold=0.0))  # every sentence is a suspect, `max_suspects` per text
    plan = guard.plan(TEXTS)
    job = ClassifyJob(guard, plan)
    while job.suspects is None:
        job.read() if job.needs_guard else job.encode(runs=2)
    assert len(job.suspects) == plan.suspect_bound and job.remaining == plan.suspect_bound
    encodes = 0
    while not job.needs_guard:
        job.encode(runs=1)
        encodes += 1
    assert encodes == plan.suspect_bound and job.remaining == 0
    assert _finish(job, runs=1)[0] == guard.classify(TEXTS)


def test_an_edit_between_reads_then_rescore_gives_the_new_states_verdicts() -> None:
    guard = _guard()
    job = ClassifyJob(guard, guard.plan(TEXTS), score_rows=4)
    while not job.needs_guard:
        job.encode(runs=4)
    assert job.read() is None  # the first rows scored on the state before the edit
    before = guard.classify(TEXTS)

    _add_cooking(guard)
    job.rescore()
    assert job.needs_guard, "rescoring keeps the vectors: no model run again"
    verdicts, _ = _finish(job, runs=4)

    assert verdicts == guard.classify(TEXTS) != before
    assert verdicts[3].category == "cooking", "the verdicts read the state with the new topic"


def test_restart_on_another_guard_gives_that_guards_verdicts() -> None:
    old, new = _guard(), _guard()
    _add_cooking(new)
    job = ClassifyJob(old, old.plan(TEXTS))
    job.encode(runs=2)
    job.restart(new, new.plan(TEXTS))
    assert job.guard is new and job.remaining == job.plan.cost
    assert _finish(job, runs=3)[0] == new.classify(TEXTS)


def test_steps_out_of_turn_are_refused() -> None:
    guard = _guard()
    job = ClassifyJob(guard, guard.plan(TEXTS))
    with pytest.raises(InvalidInputError, match="call encode"):
        job.read()
    with pytest.raises(InvalidInputError, match="not this guard's"):
        job.encode(runs=1, encoder=HashingEncoder(dim=64))
    while not job.needs_guard:
        job.encode(runs=8)
    with pytest.raises(InvalidInputError, match="call read"):
        job.encode(runs=1)
