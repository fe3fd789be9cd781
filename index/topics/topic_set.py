"""The custom topics of a guard: each topic's example vectors and learned head, stacked for scoring, and the
calibration of a topic's threshold against background text (docs/topics.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from index.scoring.functions import Matrix
from index.topics.bank import TopicBank, topic_score_matrix, topic_scores
from index.topics.calibration import topic_threshold
from index.topics.head import GramStats, TopicHead, fit_topic_head
from index.types import Vectors

if TYPE_CHECKING:
    from index.config import GuardConfig


@dataclass(slots=True)
class Topic:
    """One topic's examples (positives) and allow-examples (hard negatives), as vectors, and its head."""

    positive_ids: list[int]
    positives: Vectors
    allow_ids: list[int]
    allows: Vectors
    head: TopicHead | None = None
    head_loo: NDArray[np.float32] | None = None  # leave-one-out head outputs of the positives


class TopicSet:
    """Topics by name, kept stacked in a `TopicBank` so a query is scored against all of them in a few products.

    `background` is the shipped benign text (vectors): the negatives of every topic's head and part of the
    background a threshold is calibrated against. Not thread-safe: the guard's lock covers it.
    """

    def __init__(self, config: GuardConfig, dim: int, background: Vectors) -> None:
        self.config = config
        self.dim = dim
        self.background = background
        self._topics: dict[str, Topic] = {}
        self._bank = TopicBank.stack([], [], [], [], 0.0, dim)
        self._background_stats: GramStats | None = None

    def __contains__(self, name: object) -> bool:
        return name in self._topics

    def get(self, name: str) -> Topic | None:
        return self._topics.get(name)

    def example_count(self) -> int:
        """Examples and allow-examples of every topic (they share the guard's store with the built-in exemplars)."""
        return sum(len(t.positive_ids) + len(t.allow_ids) for t in self._topics.values())

    def update(
        self, name: str, positive_ids: list[int], positives: Vectors, allow_ids: list[int], allows: Vectors
    ) -> None:
        """Set a topic's examples (refitting its head); a topic left without positives is dropped. Call `restack`
        once after a batch of updates."""
        if not positive_ids:
            self._topics.pop(name, None)
            return
        topic = Topic(positive_ids, positives, allow_ids, allows)
        # negatives: the shipped background text and the topic's own allow-examples (not the other topics, so a
        # topic's head does not depend on the order in which topics were added). With fewer background texts
        # than dimensions the fit is underdetermined (mostly the ridge penalty): similarity alone then.
        if self.config.topic_head_weight > 0 and self.background.shape[0] >= self.dim:
            negatives = self._head_negatives().plus(topic.allows)
            topic.head, topic.head_loo = fit_topic_head(topic.positives, negatives, self.config.topic_head_l2)
        self._topics[name] = topic

    def restack(self) -> None:
        names = list(self._topics)
        self._bank = TopicBank.stack(
            names,
            [self._topics[n].positives for n in names],
            [self._topics[n].allows for n in names],
            [None if (h := self._topics[n].head) is None else (h.weights, h.bias) for n in names],
            self.config.topic_head_weight,
            self.dim,
        )

    def scores(self, queries: Vectors) -> tuple[tuple[str, ...], Matrix]:
        """(topic names, (n, T) scores of every query against every topic)."""
        cfg = self.config
        return self._bank.names, topic_score_matrix(queries, self._bank, cfg.topic_top_m, cfg.topic_knn_weight)

    def calibrate(self, name: str, safe: Vectors, target_fmr: float | None = None) -> float:
        """A threshold for topic `name` from its positives scored leave-one-out and its background: the shipped
        benign text, `safe` (the built-in safe exemplars) and the other topics' examples."""
        cfg = self.config
        topic = self._topics[name]
        background = np.concatenate(
            [self.background, safe, *(t.positives for other, t in self._topics.items() if other != name)], axis=0
        )
        bg_scores = topic_scores(
            background,
            topic.positives,
            topic.allows,
            cfg.topic_top_m,
            cfg.topic_knn_weight,
            head=None if topic.head is None else topic.head.predict(background),
            head_weight=cfg.topic_head_weight,
        )
        return topic_threshold(
            self._leave_one_out(topic),
            bg_scores,
            cfg.topic_target_fmr if target_fmr is None else target_fmr,
            cfg.topic_threshold_floor,
            cfg.topic_positive_quantile,
            cfg.topic_positive_margin,
            cfg.topic_interpolation,
        )

    def _head_negatives(self) -> GramStats:
        if self._background_stats is None:
            self._background_stats = GramStats.of(self.background)
        return self._background_stats

    def _leave_one_out(self, topic: Topic) -> NDArray[np.float32]:
        cfg = self.config
        n = topic.positives.shape[0]
        if n < 2:
            return np.zeros(0, dtype=np.float32)
        out = np.empty(n, dtype=np.float32)
        for i in range(n):
            rest = np.delete(topic.positives, i, axis=0)
            out[i] = topic_scores(
                topic.positives[i : i + 1],
                rest,
                topic.allows,
                cfg.topic_top_m,
                cfg.topic_knn_weight,
                head=None if topic.head_loo is None else topic.head_loo[i : i + 1],
                head_weight=cfg.topic_head_weight,
            )[0]
        return out
