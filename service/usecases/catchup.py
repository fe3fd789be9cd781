"""Bringing a guard level with the database: what was committed after a version, the difference, applying it.

Every committed index change is an `index_builds` row: an edit names the one topic it changed, a full build names
none. A worker process that is behind reads the rows after its version and the current state of the topics they
name (or of every topic after a full build), diffs that against its guard and applies the difference: exemplars
it lacks are embedded (only those), stored thresholds are taken as they are (never recalibrated here), so the
result equals the database state at the newest version. The diff is state-based, so applying it twice, or after a
partial failure, converges to the same guard.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from index import Action, Exemplar, Guard, Label, LabelKind, Role
from service.db.models import Topic
from service.db.repositories import IndexBuildRepository, topics_with_exemplars

LabelKey = tuple[str, str, str, bool, float | None]


def label_for(topic: Topic, recalibrate: bool = False) -> Label:
    """The guard label of a topic; with `recalibrate`, calibrated custom thresholds are left for the guard to set."""
    threshold = topic.threshold
    if recalibrate and topic.kind == "custom" and topic.threshold_source == "calibrated":
        threshold = None
    return Label(topic.name, cast(LabelKind, topic.kind), cast(Action, topic.action), threshold, topic.enabled)


def _digest(entries: Iterable[tuple[LabelKey, Iterable[tuple[int, str, str]]]]) -> str:
    h = hashlib.sha256()
    for key, exemplars in entries:
        h.update(repr(key).encode())
        for row in sorted(exemplars):
            h.update(repr(row).encode())
    return h.hexdigest()


def state_digest(topics: list[Topic]) -> str:
    """SHA-256 over everything the index is derived from: labels and exemplars (ids, texts, roles), by topic id."""
    return _digest(
        ((t.name, t.kind, t.action, t.enabled, t.threshold), [(e.id, e.role, e.text) for e in t.exemplars])
        for t in sorted(topics, key=lambda t: t.id)
    )


def guard_digest(guard: Guard, order: dict[str, int]) -> str:
    """`state_digest` computed from what the guard holds (equal exactly when the guard matches the database).

    `order` maps topic names to database ids (labels the database lacks go last); being a digest of the guard's own
    content, it can only match a database that holds that content, whatever state the order was read from.
    """
    return _content_digest(guard.labels.values(), guard.exemplars.values(), order)


def _content_digest(labels: Iterable[Label], exemplars: Iterable[Exemplar], order: dict[str, int]) -> str:
    rows: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    for e in exemplars:
        rows[e.label].append((e.id, e.role, e.text))
    by_name = {label.name: label for label in labels}
    names = sorted(by_name, key=lambda n: (order.get(n, 1 << 62), n))
    return _digest(
        ((n, by_name[n].kind, by_name[n].action, by_name[n].enabled, by_name[n].threshold), rows[n]) for n in names
    )


@dataclass(frozen=True, slots=True)
class TopicState:
    """A topic as the database holds it, detached from any session."""

    label: Label
    exemplars: tuple[Exemplar, ...]
    openai_keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Changes:
    """What was committed after a version, read in one consistent state (the caller holds the index lock)."""

    since: int
    version: int  # the newest committed version: `topics` are the database at this version
    count: int  # committed changes after `since`
    newest_full: int  # the newest full build among them (0: none)
    changed: frozenset[str] | None  # topic names to bring level; None = every topic (a full build is among them)
    topics: dict[str, TopicState] = field(default_factory=dict)  # the named topics (or all) that still exist
    digest: str | None = None  # state digest of the whole database, when every topic was read

    @property
    def full(self) -> bool:
        return self.changed is None


def _state(topic: Topic) -> TopicState:
    exemplars = tuple(Exemplar(e.id, e.text, topic.name, cast(Role, e.role)) for e in topic.exemplars)
    return TopicState(label_for(topic), exemplars, tuple(topic.openai_keys))


def read_changes(session: Session, since: int, every_topic: bool = False) -> Changes:
    """The committed changes after `since` and the state of the topics they touched (all of them if `every_topic`).

    Consistent only while the caller holds the index lock (no change can commit between the queries).
    """
    builds = IndexBuildRepository(session)
    rows = builds.ready_since(since)
    version = rows[-1].version if rows else builds.latest_ready_version()
    full_versions = [r.version for r in rows if r.topic is None]
    changed = None if full_versions else frozenset(str(r.topic) for r in rows)
    read_all = every_topic or changed is None
    topics = topics_with_exemplars(session, None if read_all else changed)
    return Changes(
        since=since,
        version=version,
        count=len(rows),
        newest_full=max(full_versions, default=0),
        changed=changed,
        topics={t.name: _state(t) for t in topics},
        digest=state_digest(topics) if read_all else None,
    )


@dataclass(slots=True)
class SyncPlan:
    """The edits that make a guard equal to the database state of `Changes` (apply with the vectors of `add`)."""

    remove_labels: list[str] = field(default_factory=list)
    remove_ids: list[int] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    add: list[Exemplar] = field(default_factory=list)
    refit_head: bool = False
    touched: set[str] = field(default_factory=set)

    @property
    def texts(self) -> list[str]:
        return [e.text for e in self.add]

    def apply(self, guard: Guard, vectors: NDArray[np.float32] | None) -> None:
        """Apply to `guard` (the caller holds whatever lock guards it); `vectors` embed `add`, in order."""
        for name in self.remove_labels:
            guard.remove_label(name)
        if self.remove_ids:
            guard.remove_exemplars(self.remove_ids)
        for label in self.labels:
            guard.upsert_label(label)
        if self.add:
            guard.add_exemplars(self.add, vectors, calibrate=False)
        if self.refit_head:
            guard.fit_head()


def plan_sync(guard: Guard, changes: Changes, refit_head: bool = False) -> SyncPlan:
    """Diff `guard` against the topics `changes` names (every topic for a full build)."""
    plan = SyncPlan(refit_head=refit_head)
    have_labels = guard.labels
    have: dict[str, dict[int, Exemplar]] = defaultdict(dict)
    for e in guard.exemplars.values():
        have[e.label][e.id] = e
    if changes.changed is None:
        names = set(changes.topics) | {n for n, lab in have_labels.items() if lab.kind == "custom"}
    else:
        names = set(changes.changed)
    for name in sorted(names):
        state = changes.topics.get(name)
        mine = have.get(name, {})
        if state is None:
            if name in have_labels:  # deleted (only custom topics can be)
                plan.remove_labels.append(name)
                plan.touched.add(name)
            continue
        if have_labels.get(name) != state.label:
            plan.labels.append(state.label)
            plan.touched.add(name)
        want = {e.id: e for e in state.exemplars}
        gone = [i for i, e in mine.items() if want.get(i) != e]
        new = [e for i, e in want.items() if mine.get(i) != e]
        if gone or new:
            plan.remove_ids.extend(gone)
            plan.add.extend(new)
            plan.touched.add(name)
    plan.remove_ids.sort()
    plan.add.sort(key=lambda e: e.id)
    return plan


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    problems: list[str]
    db_exemplars: int
    index_exemplars: int


def verify_guard(guard: Guard, topics: list[Topic]) -> VerifyReport:
    """Does the guard hold exactly the database's exemplars and labels?"""
    problems: list[str] = []
    expected = {e.id: (e.text, t.name, e.role) for t in topics for e in t.exemplars}
    actual = {i: (e.text, e.label, e.role) for i, e in guard.exemplars.items()}
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    changed = sorted(i for i in set(expected) & set(actual) if expected[i] != actual[i])
    if missing:
        problems.append(f"{len(missing)} exemplars missing from the index (ids {missing[:10]})")
    if extra:
        problems.append(f"{len(extra)} exemplars in the index but not in the database (ids {extra[:10]})")
    if changed:
        problems.append(f"{len(changed)} exemplars differ in text, topic or role (ids {changed[:10]})")
    labels = guard.labels
    for topic in topics:
        label = labels.get(topic.name)
        if label is None:
            problems.append(f"topic {topic.name!r} is not in the index")
            continue
        want = label_for(topic)
        if (label.kind, label.action, label.enabled, label.threshold) != (
            want.kind,
            want.action,
            want.enabled,
            want.threshold,
        ):
            problems.append(f"topic {topic.name!r} differs: index {label} vs database {want}")
    names = {t.name for t in topics}
    problems.extend(f"label {name!r} is in the index but not in the database" for name in labels if name not in names)
    return VerifyReport(not problems, problems, len(expected), len(actual))
