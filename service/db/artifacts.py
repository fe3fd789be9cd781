"""Index artifacts stored in the database: each file of a saved guard in chunks, verified by SHA-256 when read."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from service.db.models import IndexArtifact, IndexArtifactChunk

CHUNK_BYTES = 4 << 20  # far below PostgreSQL's 1 GB bytea and SQLite's 1 GB blob; a few round trips per artifact


class CorruptArtifactError(Exception):
    """A stored artifact is incomplete or does not match its checksums."""


@dataclass(frozen=True, slots=True)
class StoredArtifact:
    """An artifact's row without its bytes."""

    id: int
    version: int
    model_id: str
    size: int


def files_checksum(files: Mapping[str, bytes]) -> str:
    """SHA-256 over the files in name order (each name, its length and its bytes)."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}\0{len(files[name])}\0".encode())
        h.update(files[name])
    return h.hexdigest()


class IndexArtifactRepository:
    """Adds, lists, reads and prunes stored artifacts (takes a session, never commits)."""

    def __init__(self, session: Session, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.session = session
        self.chunk_bytes = chunk_bytes

    def add(self, version: int, model_id: str, files: Mapping[str, bytes]) -> StoredArtifact:
        """Store `files` as the artifact of committed version `version` (flushed, not committed)."""
        manifest = {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "chunks": self._chunks(len(data))}
            for name, data in files.items()
        }
        size = sum(len(data) for data in files.values())
        row = IndexArtifact(
            version=version, model_id=model_id, size=size, checksum=files_checksum(files), files=manifest
        )
        self.session.add(row)
        self.session.flush()
        for name, data in files.items():
            for seq in range(self._chunks(len(data))):
                chunk = data[seq * self.chunk_bytes : (seq + 1) * self.chunk_bytes]
                self.session.add(IndexArtifactChunk(artifact_id=row.id, name=name, seq=seq, data=chunk))
                self.session.flush()  # one chunk in memory at a time on the way out
        return StoredArtifact(row.id, version, model_id, size)

    def _chunks(self, size: int) -> int:
        return max(1, -(-size // self.chunk_bytes))

    def newest(self, limit: int | None = None, above: int = -1) -> list[StoredArtifact]:
        """Stored artifacts newer than version `above`, newest first."""
        query = select(IndexArtifact).where(IndexArtifact.version > above).order_by(IndexArtifact.version.desc())
        if limit is not None:
            query = query.limit(limit)
        return [StoredArtifact(a.id, a.version, a.model_id, a.size) for a in self.session.scalars(query)]

    def newest_version(self) -> int:
        """The version of the newest stored artifact (0 when there is none)."""
        return int(self.session.scalar(select(func.coalesce(func.max(IndexArtifact.version), 0))) or 0)

    def files(self, artifact_id: int) -> dict[str, bytes]:
        """The artifact's files, reassembled and checked against every checksum it was stored with.

        Raises:
            CorruptArtifactError: a chunk is missing or a file or the whole does not match its checksum.
        """
        row = self.session.get(IndexArtifact, artifact_id)
        if row is None:
            raise CorruptArtifactError(f"index artifact {artifact_id} is gone (pruned meanwhile)")
        if any(Path(name).name != name or name.startswith(".") for name in row.files):
            raise CorruptArtifactError(f"index artifact v{row.version} names a file outside its folder")
        parts: dict[str, list[bytes]] = {name: [] for name in row.files}
        query = (
            select(IndexArtifactChunk.name, IndexArtifactChunk.seq, IndexArtifactChunk.data)
            .where(IndexArtifactChunk.artifact_id == artifact_id)
            .order_by(IndexArtifactChunk.name, IndexArtifactChunk.seq)
        )
        for name, seq, data in self.session.execute(query):
            if name not in parts or seq != len(parts[name]):
                raise CorruptArtifactError(f"index artifact v{row.version}: unexpected chunk {name}#{seq}")
            parts[name].append(bytes(data))
        files = {name: b"".join(chunks) for name, chunks in parts.items()}
        for name, expected in row.files.items():
            if len(parts[name]) != expected["chunks"] or hashlib.sha256(files[name]).hexdigest() != expected["sha256"]:
                raise CorruptArtifactError(f"index artifact v{row.version}: {name} does not match its checksum")
        if files_checksum(files) != row.checksum:
            raise CorruptArtifactError(f"index artifact v{row.version} does not match its checksum")
        return files

    def prune(self, keep: int) -> int:
        """Delete all but the newest `keep` artifacts (chunks first: SQLite enforces no cascade by default)."""
        old = [a.id for a in self.newest()[keep:]]
        if old:
            self.session.execute(delete(IndexArtifactChunk).where(IndexArtifactChunk.artifact_id.in_(old)))
            self.session.execute(delete(IndexArtifact).where(IndexArtifact.id.in_(old)))
        return len(old)
