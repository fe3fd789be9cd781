"""benchmarks.serving.topic_add: disjoint example groups (no add re-encodes another's texts) and the summary table."""

from __future__ import annotations

from benchmarks.serving import topic_add as ta
from benchmarks.serving.ab_server import Arm


def test_each_add_gets_its_own_examples() -> None:
    groups = ta.topic_examples(5, 10)
    assert [len(g) for g in groups] == [10] * 5
    texts = [t for g in groups for t in g]
    assert len(set(texts)) == len(texts)


def test_the_summary_has_idle_and_loaded_percentiles_per_arm() -> None:
    times = ta.TopicAddTimes(idle=[0.1, 0.2, 0.3], loaded=[0.4, 0.5], classified_per_s=[150.0, 170.0])
    lines = ta.summary([(Arm("after", ".", {}), times)]).splitlines()
    assert lines[2] == "| after | 200 | 298 | 450 | 499 | 160 | 3 + 2 |"  # p99 interpolated between samples
