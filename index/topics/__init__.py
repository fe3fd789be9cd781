"""Custom topics: open-set scores (`TopicBank`), per-topic heads, threshold calibration, and the `TopicSet` a guard
keeps them in."""

from __future__ import annotations

from index.topics.bank import TopicBank, topic_score_matrix, topic_scores
from index.topics.calibration import topic_threshold
from index.topics.head import GramStats, TopicHead, fit_topic_head
from index.topics.topic_set import Topic, TopicSet

__all__ = [
    "GramStats",
    "Topic",
    "TopicBank",
    "TopicHead",
    "TopicSet",
    "fit_topic_head",
    "topic_score_matrix",
    "topic_scores",
    "topic_threshold",
]
