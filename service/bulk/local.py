"""The in-process engine: a JSONL file classified in batches by one guard, rows out in input order."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from index import Guard
from service.bulk.rows import Row, classify_rows, parse_line


def classify_lines(guard: Guard, lines: Sequence[str], batch_size: int, evidence: bool = False) -> Iterator[list[Row]]:
    """Output rows of JSONL `lines`, one list per batch of `batch_size` lines, in input order."""
    for start in range(0, len(lines), batch_size):
        parsed = [parse_line(line, f"line {n}") for n, line in enumerate(lines[start : start + batch_size], start + 1)]
        yield classify_rows(guard, parsed, evidence)
