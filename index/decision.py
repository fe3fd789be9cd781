"""From scores to verdicts: the worst unit of a text decides, against its category's or topic's threshold, with
the nearest exemplars as evidence."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from index.labels import LabelSet
from index.scoring import Scores
from index.types import SAFE, Evidence, Exemplar, Label, Verdict
from index.units import ClassifyPlan, top_per_owner

if TYPE_CHECKING:
    from index.config import GuardConfig


class Decider:
    """Turns `Scores` into verdicts for the guard's current labels and exemplars (read, never changed, here).

    Not thread-safe: the guard calls it under its lock.
    """

    def __init__(self, config: GuardConfig, labels: LabelSet, exemplars: Mapping[int, Exemplar]) -> None:
        self.config = config
        self.labels = labels
        self.exemplars = exemplars

    def topic_threshold(self, label: Label) -> float:
        """The threshold a custom topic's score is compared with: its own (calibrated or set), else the floor."""
        return self.config.topic_threshold_floor if label.threshold is None else label.threshold

    def suspects(self, plan: ClassifyPlan, in_context: NDArray[np.float32], unit_scores: Scores) -> NDArray[np.intp]:
        """The sentences (indices into `plan.unit_texts`) to encode alone: those whose in-context score reaches
        their bar (`sentence_threshold`, or the nearest topic's threshold), at most `sentence_max_suspects` per
        text; a unit without tokens is a zero vector and never a suspect."""
        cfg = self.config
        assert cfg.sentence_threshold is not None
        margin = unit_scores.unsafe - cfg.sentence_threshold
        if cfg.sentence_topics:
            for name, in_topic in unit_scores.topics.items():
                bar = self.topic_threshold(self.labels[name]) - cfg.sentence_topic_margin
                margin = np.maximum(margin, in_topic - bar)
        live = np.linalg.norm(in_context, axis=1) > 0.5
        return top_per_owner(
            np.flatnonzero(live & (margin >= 0)), margin, plan.unit_owners(), cfg.sentence_max_suspects
        )

    def verdicts(self, plan: ClassifyPlan, scores: Scores, suspects: NDArray[np.intp]) -> list[Verdict]:
        """One verdict per text from the scores of all the plan's windows followed by its suspects read alone."""
        window_owner = np.asarray(plan.owners)
        variant = plan.is_variant()
        suspect_rows = len(plan.windows) + np.arange(len(suspects))
        suspect_owner = plan.unit_owners()[suspects]
        # a deobfuscated variant's windows are extra units, like suspect sentences: they decide, uncounted; a
        # decoded text's variants decide alone (its own windows read the encoded form)
        verdicts = [
            self.verdict(
                scores,
                np.flatnonzero(~variant & (window_owner == n)),
                np.concatenate([np.flatnonzero(variant & (window_owner == n)), suspect_rows[suspect_owner == n]])
                if n not in plan.decoded
                else np.flatnonzero(variant & (window_owner == n)),
                own_decide=n not in plan.decoded,
            )
            for n in range(plan.n_texts)
        ]
        return plan.annotate(verdicts)

    def verdict(
        self, s: Scores, rows: NDArray[np.intp], units: NDArray[np.intp] | None = None, own_decide: bool = True
    ) -> Verdict:
        """The verdict of one text from its window rows and its extra unit rows (suspect sentences, deobfuscated
        variants), which decide built-ins, and custom topics unless `sentence_topics` is off. `own_decide` False:
        the units alone decide (a decoded text), its windows only count."""
        cfg = self.config
        labels = self.labels
        if not own_decide and units is not None and len(units):
            builtin_rows = units
        else:
            builtin_rows = rows if units is None or not len(units) else np.concatenate([rows, units])
        worst = int(builtin_rows[np.argmax(s.unsafe[builtin_rows])])
        unsafe = float(s.unsafe[worst])
        fused = s.builtin[worst]
        unsafe_part = fused[[n != SAFE for n in labels.builtin]]
        # float32 added in column order (what summing the row's scalars one by one did): a running sum's last value
        unsafe_mass = max(1e-12, float(np.cumsum(unsafe_part)[-1]) if len(unsafe_part) else 0.0)
        categories: dict[str, float] = {}
        for name, share in zip(labels.builtin, fused.tolist(), strict=True):  # one list, not one numpy scalar a label
            if name != SAFE and labels[name].enabled:
                categories[name] = round(unsafe * share / unsafe_mass, 6)
        candidates: list[tuple[bool, float, str, float, float]] = []  # (blocks, margin, name, score, threshold)
        if categories:
            top = max(categories, key=categories.__getitem__)
            label = labels[top]
            threshold = cfg.category_thresholds.get(top, cfg.threshold) if label.threshold is None else label.threshold
            if unsafe >= threshold:
                candidates.append((label.action == "block", unsafe - threshold, top, unsafe, threshold))
        evidence_row = worst
        topic_rows = builtin_rows if cfg.sentence_topics or not own_decide else rows
        for name, scores in s.topics.items():
            score = float(scores[topic_rows].max())
            categories[name] = round(max(0.0, score), 6)
            threshold = self.topic_threshold(labels[name])
            if score >= threshold:
                candidates.append((labels[name].action == "block", score - threshold, name, score, threshold))
        if not candidates:
            return Verdict(
                False, None, round(unsafe, 6), categories, self.evidence(s, evidence_row), None, None, len(rows)
            )
        _, _, name, score, threshold = max(candidates)
        if labels[name].kind == "custom":
            evidence_row = int(topic_rows[np.argmax(s.topics[name][topic_rows])])
        return Verdict(
            True,
            name,
            round(max(unsafe, score), 6),
            categories,
            self.evidence(s, evidence_row),
            labels[name].action,
            round(threshold, 6),
            len(rows),
        )

    def evidence(self, s: Scores, row: int) -> list[Evidence]:
        """The nearest exemplars of row `row`, at most `config.evidence` of them."""
        out: list[Evidence] = []
        for sim, i in zip(s.neighbour_sims[row], s.neighbour_ids[row], strict=True):
            e = self.exemplars.get(int(i))
            if e is None or not np.isfinite(sim):
                continue
            out.append(Evidence(e.id, e.text, e.label, round(float(sim), 6), e.role))
            if len(out) >= self.config.evidence:
                break
        return out
