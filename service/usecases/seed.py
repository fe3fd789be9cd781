"""Seeding: the built-in taxonomy and its `train` exemplars (first run, and categories added later); background text."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from index import SAFE, load_rows, load_taxonomy
from service.db.models import Topic
from service.db.repositories import ExemplarRepository, IndexLockRepository, TopicRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SeedReport:
    categories: int
    exemplars: int


def seed_database(session: Session, data_dir: Path) -> SeedReport | None:
    """Insert the taxonomy and its train-split exemplars into an empty database; in a seeded one, add the built-in
    categories the taxonomy gained since (with their train exemplars). None when nothing was added.

    Categories already in the database are left as they are (operators may have edited their exemplars or
    thresholds). A category added here changes the database, so the saved index no longer matches it and the
    start-up that follows rebuilds it (reusing the vectors of every unchanged exemplar).
    """
    topics = TopicRepository(session)
    # Serialise with other processes starting at the same time: only one of them adds a category.
    IndexLockRepository(session).acquire("seed")
    existing = {t.name for t in topics.find()}
    taxonomy = load_taxonomy(data_dir / "taxonomy.toml")
    missing = [c for c in taxonomy.categories if c.id not in existing]
    if not missing:
        return None
    by_id: dict[str, Topic] = {}
    for category in missing:
        kind = "safe" if category.id == SAFE else "builtin"
        topic = Topic(
            name=category.id,
            title=category.name,
            description=category.description,
            kind=kind,
            action=category.action,
            enabled=True,
            threshold=None,
            threshold_source="calibrated",
            openai_keys=list(category.openai),
        )
        by_id[category.id] = topics.add(topic)
    rows_path = data_dir / "safety.jsonl"
    count = 0
    if rows_path.is_file():
        rows = load_rows(rows_path, splits={"train"})
        exemplars = ExemplarRepository(session)
        grouped: dict[str, list[tuple[str, str, str]]] = {}
        for row in rows:
            if row.category in existing:
                continue
            if row.category not in by_id:
                log.warning("seed row of unknown category %r skipped (source %s)", row.category, row.source)
                continue
            grouped.setdefault(row.category, []).append((row.text, "positive", row.source))
        for name, items in grouped.items():
            count += exemplars.insert_many(by_id[name], items)
    else:
        log.warning(
            "no %s: built-in categories seeded without exemplars; add data and run `lightguard index rebuild`",
            rows_path,
        )
    if existing:
        log.warning(
            "the taxonomy gained built-in categories %s: added with %d exemplars from %s; the index is rebuilt to "
            "include them (categories already in the database keep their exemplars)",
            ", ".join(sorted(by_id)),
            count,
            data_dir,
        )
    else:
        log.info("seeded %d categories and %d exemplars from %s", len(by_id), count, data_dir)
    return SeedReport(len(by_id), count)


def load_background(data_dir: Path) -> list[str]:
    """Benign background texts (data/background.jsonl, one `{"text": ...}` per line) used to calibrate topics."""
    path = data_dir / "background.jsonl"
    if not path.is_file():
        return []
    texts: list[str] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                text = json.loads(line).get("text")
                if isinstance(text, str) and text.strip():
                    texts.append(text)
    return texts
