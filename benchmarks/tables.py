"""Markdown tables, as the benchmarks print them and the docs paste them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def markdown_table(header: Sequence[str], rows: Iterable[Iterable[object]], align: Sequence[str] | None = None) -> str:
    """A pipe table; `|` inside a cell is escaped. `align` gives each column's rule (default `---`, e.g. `---:`)."""
    rules = list(align) if align is not None else ["---"] * len(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "".join(f"{rule}|" for rule in rules)]
    lines += ["| " + " | ".join(str(x).replace("|", "\\|") for x in row) + " |" for row in rows]
    return "\n".join(lines)
