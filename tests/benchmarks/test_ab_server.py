"""benchmarks.serving.ab_server: arms parse into revision + environment, and the summary compares rounds pairwise."""

from __future__ import annotations

import pytest

from benchmarks.serving import ab_server as ab


def test_an_arm_is_a_name_a_revision_and_environment_settings() -> None:
    arm = ab.parse_arm(["0ms", ".", "LIGHTGUARD_BATCH_WAIT_MS=0", "X=a=b"])
    assert (arm.name, arm.rev, arm.env) == ("0ms", ".", {"LIGHTGUARD_BATCH_WAIT_MS": "0", "X": "a=b"})
    with pytest.raises(SystemExit, match="NAME REV"):
        ab.parse_arm(["lonely"])
    with pytest.raises(SystemExit, match="not KEY=VALUE"):
        ab.parse_arm(["a", ".", "LIGHTGUARD_BATCH_WAIT_MS"])


def test_the_summary_counts_rounds_won_against_the_first_arm_in_the_same_round() -> None:
    first = ab.Arm("before", "abc", {}, rates=[400.0, 500.0, 450.0], p50_ms=[20, 16, 18], cpu_ms=[3, 2.5, 2.8])
    # a higher median, but it won only the rounds in which the machine was fast for both
    second = ab.Arm("after", ".", {}, rates=[390.0, 520.0, 470.0], p50_ms=[21, 15, 17], cpu_ms=[3.1, 2.4, 2.7])
    lines = ab.summary([first, second]).splitlines()
    assert lines[2] == "| before | 450.0 | 400, 500, 450 | 18.00 | 2.80 | - |"
    assert lines[3] == "| after | 470.0 | 390, 520, 470 | 17.00 | 2.70 | 2 of 3 |"
