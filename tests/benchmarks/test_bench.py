"""benchmarks.serving.bench: the encoder-only rate runs every prompt, and the printed lines state the ratio."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from benchmarks.machine import SIMD_FLAGS, simd_flags
from benchmarks.serving import bench
from index import HashingEncoder


class CountingEncoder(HashingEncoder):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        self.batches.append(len(texts))
        return super().encode(texts, batch_size)


def test_the_encoder_only_rate_encodes_every_prompt_in_batches_of_the_clients() -> None:
    encoder = CountingEncoder()
    rate = bench.encoder_only_rate(encoder, batch=8, passes=2)
    assert rate > 0
    # one warm-up batch, then every prompt twice in batches of 8
    assert encoder.batches == [8] + [8] * (2 * bench.ENCODER_PROMPTS // 8)


def test_the_summary_states_the_machine_and_the_ratio_against_its_targets() -> None:
    report = {
        "machine": {
            "cpu": "AMD EPYC",
            "cores": 2,
            "int8_isa": "avx512_vnni",
            "simd_flags": ["avx2", "avx512_vnni"],
            "loadavg": [1.0, 2.0, 3.0],
            "loadavg_end": [1.5, 2.0, 3.0],
        },
        "end_to_end_vs_encoder": {
            "clients": 8,
            "end_to_end_per_s": 300.0,
            "encoder_only_per_s": 400.0,
            "ratio": 0.75,
            "target_ratio": 0.8,
            "p99_ms": 30.5,
            "target_p99_ms": 25.0,
        },
    }
    cpu, ratio = bench.ratio_lines(report)
    assert cpu.startswith("CPU: AMD EPYC, 2 cores, int8: avx512_vnni, flags: avx2 avx512_vnni, load average 1.0 2.0")
    assert ratio == (
        "8 clients end to end: 300.0 prompts/s = 75% of the encoder alone (400.0 prompts/s; target >= 80%);"
        " HTTP p99 30.5 ms (target <= 25 ms)"
    )


def test_simd_flags_are_a_subset_in_a_fixed_order() -> None:
    flags = simd_flags()
    assert flags == [f for f in SIMD_FLAGS if f in flags]
