"""First-run seeding: the built-in taxonomy and its `train` exemplars; the background corpus for calibration."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from index import SAFE, load_rows, load_taxonomy
from service.models import Topic
from service.repositories import ExemplarRepository, TopicRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SeedReport:
    categories: int
    exemplars: int


def seed_database(session: Session, data_dir: Path) -> SeedReport | None:
    """Insert the taxonomy and its train-split exemplars into an empty database; None when already seeded."""
    topics = TopicRepository(session)
    if topics.count():
        return None
    taxonomy = load_taxonomy(data_dir / "taxonomy.toml")
    by_id: dict[str, Topic] = {}
    for category in taxonomy.categories:
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
            if row.category not in by_id:
                log.warning("seed row of unknown category %r skipped (source %s)", row.category, row.source)
                continue
            grouped.setdefault(row.category, []).append((row.text, "positive", row.source))
        for name, items in grouped.items():
            count += len(exemplars.add_many(by_id[name], items))
    else:
        log.warning(
            "no %s: built-in categories seeded without exemplars; add data and run `lightguard index rebuild`",
            rows_path,
        )
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
