"""A classify call in steps of bounded work, for a scheduler that interleaves a large request with other work."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from index.encoding import Encoder
from index.errors import InvalidInputError
from index.guard import Guard
from index.scoring import Scores
from index.types import Vectors, Verdict
from index.units import ClassifyPlan

SCORE_ROWS = 64
"""Rows (windows, sentences) scored per `read` step by default: one search of 64 queries, a few milliseconds, so
that a long document's scoring (a 100,000-character one has ~250 windows and ~900 sentences) does not hold up short
prompts any more than its encoding does."""


class ClassifyJob:
    """`Guard.classify` of a plan, one bounded step at a time:

    1. encode the windows, `runs` per `encode` step (no lock: vectors depend only on the guard's encoder);
    2. score the in-context sentences `score_rows` per `read` step, then pick the suspects (`Guard.suspects`);
    3. encode the suspects alone, `runs` per `encode` step;
    4. score the windows and suspects `score_rows` per `read` step; 5. the verdicts (`Guard.verdicts`), a last `read`.

    `needs_guard` says which kind of step comes next. The `read` steps must all see one state of the guard: the
    caller pairs them with that state (e.g. under a lock that edits wait for, checking a version), and if the guard
    was edited since the job's first read it calls `rescore` (scoring starts again at step 2; the vectors stay), and
    if the guard was replaced, `restart` with the new guard and its plan of the same texts. The verdicts then equal
    `Guard.classify` of the plan's texts on the state they were read from. A job is not thread-safe: one step at a
    time.
    """

    def __init__(self, guard: Guard, plan: ClassifyPlan, score_rows: int = SCORE_ROWS) -> None:
        """`plan`: made by `guard.plan`; `score_rows`: most rows scored per `read` step."""
        self._score_rows = max(1, score_rows)
        self.restart(guard, plan)

    @property
    def guard(self) -> Guard:
        return self._guard

    @property
    def plan(self) -> ClassifyPlan:
        return self._plan

    @property
    def suspects(self) -> NDArray[np.intp] | None:
        """The sentences (indices into `plan.unit_texts`) picked to be encoded alone; None until step 2 is done."""
        return self._suspects

    @property
    def remaining(self) -> int:
        """Model runs not done yet (windows, then the suspects' bound until they are picked)."""
        windows = len(self._plan.windows) - self._encoded
        if self._suspects is None:
            return windows + self._plan.suspect_bound
        return windows + len(self._suspects) - self._alone_count()

    @property
    def needs_guard(self) -> bool:
        """Whether the next step is a `read` of the guard's state (scoring, picking, deciding), not an `encode`."""
        if self._encoded < len(self._plan.windows):
            return False
        return self._suspects is None or self._alone_count() >= len(self._suspects)

    def restart(self, guard: Guard, plan: ClassifyPlan) -> None:
        """Start again from nothing on `guard` (e.g. a rebuild replaced the guard, perhaps with another encoder)."""
        self._guard = guard
        self._plan = plan
        dim = guard.encoder.dim
        self._vectors: Vectors = np.zeros((len(plan.windows), dim), dtype=np.float32)
        self._unit_vectors: list[Vectors] = [np.zeros((0, dim), dtype=np.float32)] * len(plan.units)
        self._encoded = 0
        self._in_context: Vectors | None = None
        self.rescore()

    def rescore(self) -> None:
        """Forget every score (they were read from a state of the guard that is gone); the vectors stay."""
        self._unit_parts: list[Scores] = []
        self._suspects: NDArray[np.intp] | None = None
        self._alone: list[Vectors] = []
        self._rows: Vectors | None = None  # the windows' and the suspects' vectors, once all are in
        self._window_parts: list[Scores] = []

    def encode(self, runs: int, encoder: Encoder | None = None) -> None:
        """The next model step: up to `runs` windows (step 1), else up to `runs` suspects alone (step 3). Needs no
        lock. `encoder`: another instance of the guard's model (e.g. one on one thread, beside other work).

        Raises:
            InvalidInputError: the next step is a `read` (see `needs_guard`), or `encoder` runs another model.
        """
        if self.needs_guard:
            raise InvalidInputError("this job's next step reads the guard (needs_guard): call read(), not encode()")
        guard, plan, runs = self._guard, self._plan, max(1, runs)
        model = guard.same_model(encoder)
        if self._encoded < len(plan.windows):  # 1
            stop = min(self._encoded + runs, len(plan.windows))
            vectors, units = guard.encode_plan(plan, self._encoded, stop, model)
            self._vectors[self._encoded : stop] = vectors
            self._unit_vectors[self._encoded : stop] = units
            self._encoded = stop
            return
        assert self._suspects is not None  # needs_guard is False only while suspects are left to encode
        done = self._alone_count()
        texts = [plan.unit_texts[i] for i in self._suspects[done : done + runs]]  # 3
        self._alone.append(model.encode(texts, batch_size=guard.config.batch_size))

    def read(self) -> list[Verdict] | None:
        """The next step that reads the guard's state: score up to `score_rows` rows (steps 2 and 4), pick the
        suspects (end of step 2), or decide (step 5: the verdicts, one per text, returned; None before).

        Raises:
            InvalidInputError: the next step is an `encode` (see `needs_guard`).
        """
        if not self.needs_guard:
            raise InvalidInputError("this job's next step runs the model (needs_guard is False): call encode()")
        guard, plan = self._guard, self._plan
        if not plan.windows:
            return []
        if self._suspects is None:  # 2
            if self._in_context is None:
                self._in_context = guard.in_context(self._unit_vectors)
            in_context = self._in_context
            scored = sum(len(p.unsafe) for p in self._unit_parts)
            if guard.reads_sentences(plan) and scored < len(in_context):
                self._unit_parts.append(guard.score(in_context[scored : scored + self._score_rows]))
                return None
            unit_scores = Scores.concat(self._unit_parts) if self._unit_parts else None
            self._suspects = guard.suspects(plan, in_context, unit_scores)
            return None
        if self._rows is None:
            self._rows = np.concatenate([self._vectors, *self._alone], axis=0)
        rows = self._rows
        scored = sum(len(p.unsafe) for p in self._window_parts)
        if scored < len(rows):  # 4
            self._window_parts.append(guard.score(rows[scored : scored + self._score_rows]))
            return None
        return guard.verdicts(plan, Scores.concat(self._window_parts), self._suspects)  # 5

    def _alone_count(self) -> int:
        return sum(len(a) for a in self._alone)
