"""The saved index artifact: a folder in LIGHTGUARD_HOME (read, written and replaced by one process of the home at a
time) and, for each committed full build, a copy in the database that a replica with an empty or older home loads
instead of re-embedding every exemplar (docs/deploy.md). Edits save only their delta from the folder's full
artifact (`index.artifact_delta`); the database copy is the full artifact alone."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from index import (
    ArtifactBase,
    EmbeddingCache,
    Encoder,
    Guard,
    GuardDelta,
    GuardImage,
    IndexArtifactError,
    artifact_files,
    capture_guard,
    image_base,
    load_artifact,
    read_guard_delta,
    read_guard_metadata,
    write_guard_delta,
    write_guard_image,
)
from service.db.artifacts import CorruptArtifactError, IndexArtifactRepository
from service.db.engine import session_scope
from service.db.repositories import IndexBuildRepository
from service.serving.interprocess import FileLock

log = logging.getLogger(__name__)
# what IndexArtifacts.write_delta did: "superseded" = a newer version is already saved, nothing to write
DeltaSave = Literal["saved", "superseded", "rebase", "failed"]


class IndexArtifacts:
    """The artifact folder `index_dir`, behind a file lock shared by every process of the home, and the artifacts
    of full builds in the database (`keep` newest kept). `on_load(source)` is told where each guard read came from:
    `home` or `database` (the metric `lightguard_index_loaded_from`). `embedding_cache`: where guards read and built
    for this home take and keep exemplar vectors (`index.Guard.build`)."""

    def __init__(
        self,
        index_dir: Path,
        sessions: sessionmaker[Session],
        keep: int = 3,
        on_load: Callable[[str], None] | None = None,
        embedding_cache: EmbeddingCache | None = None,
    ) -> None:
        self.index_dir = index_dir
        self.embedding_cache = embedding_cache
        self.sessions = sessions
        self.keep = keep
        self.on_load = on_load
        self.lock = FileLock(index_dir.parent / f".{index_dir.name}.artifact.lock")
        # the full artifact this process last read or wrote (what its edits' deltas are saved against), and the
        # stat of its manifest then: another process of the home that replaces the folder changes it
        self._base: tuple[ArtifactBase, tuple[int, int, int]] | None = None

    @property
    def base(self) -> ArtifactBase | None:
        """The full artifact an edit's delta is saved against (None: the next save must be a full one)."""
        return self._base[0] if self._base is not None else None

    def read(self, encoder: Encoder) -> tuple[dict[str, Any], Guard]:
        """The saved metadata and guard: the home's, unless the database holds a newer full build's artifact made
        with this encoder, which then replaces the home's first. Raises IndexArtifactError when there is none or
        it cannot be read."""
        with self.lock.hold():
            try:
                home_version = int(read_guard_metadata(self.index_dir).get("version", 0))
            except IndexArtifactError:
                home_version = -1
            source = "database" if self._adopt_stored(encoder.model_id, home_version) else "home"
            loaded = load_artifact(self.index_dir, encoder, cache=self.embedding_cache)
            self._remember(loaded.base)
        meta = loaded.metadata
        log.info("index artifact v%s read from the %s", meta.get("version"), source)
        self.loaded(source)
        return meta, loaded.guard

    def loaded(self, source: str) -> None:
        """Count a guard read from `source` (`home`, `database`) or built from the exemplars (`build`)."""
        if self.on_load is not None:
            self.on_load(source)

    def _adopt_stored(self, model_id: str, above: int) -> bool:
        """Copy the newest intact database artifact newer than version `above` into the home (the caller holds
        the lock); a corrupt or partial one is skipped for the one before it. Returns whether one was copied."""
        try:
            with self.sessions() as session:
                repo = IndexArtifactRepository(session)
                for stored in repo.newest(above=above):
                    if stored.model_id != model_id:
                        continue
                    try:
                        files = repo.files(stored.id)
                    except CorruptArtifactError as exc:
                        log.warning("skipping the index artifact in the database: %s", exc)
                        continue
                    _replace_dir(self.index_dir, files)
                    return True
        except SQLAlchemyError:
            log.exception("could not read index artifacts from the database; using the home's")
        return False

    def publish(self, version: int) -> None:
        """Store the home's artifact of committed full build `version` in the database and prune old ones.

        Called after the build committed, outside the index lock: no edit waits for it. A replica that follows the
        build before it is stored diffs and refits instead (docs/reliability.md). Failures are logged, not raised.
        """
        try:
            with self.lock.hold():
                # the full artifact alone (edits since are in the change log, and in this home's delta)
                meta = read_guard_metadata(self.index_dir, delta=False)
                if int(meta.get("version", 0)) != version:
                    return  # another process of this home saved a newer version meanwhile: it publishes its own
                files = artifact_files(self.index_dir)
                model_id = str(meta.get("model_id", ""))
            with session_scope(self.sessions) as session:
                repo = IndexArtifactRepository(session)
                repo.add(version, model_id, files)
                pruned = repo.prune(self.keep)
            log.info(
                "index artifact v%d stored in the database (%d bytes; %d old one(s) pruned)",
                version,
                sum(len(b) for b in files.values()),
                pruned,
            )
        except IntegrityError:
            log.info("index artifact v%d is already in the database", version)
        except (OSError, IndexArtifactError, SQLAlchemyError):
            log.exception("could not store the index artifact v%d in the database", version)

    def write(self, guard: Guard, digest: str | None, version: int) -> None:
        """Save `guard` as committed version `version` (a full artifact), unless a newer committed version is saved
        already. `digest`: the database state digest it matches (None: computed when it is loaded)."""
        self._write(lambda: capture_guard(guard), digest, version)

    def write_image(self, image: GuardImage, digest: str | None, version: int) -> None:
        """`write` of a guard captured earlier (`index.capture_guard`), when no lock is held any more."""
        self._write(lambda: image, digest, version)

    def write_delta(self, delta: GuardDelta, version: int) -> DeltaSave:
        """Save committed version `version` as `delta` from the home's full artifact. "rebase": that full artifact is
        not the delta's base any more (another process replaced it): save a full one instead; "failed": the disk
        refused (logged; not retried as a full save, the disk is the problem and the change log has the edit)."""
        with self.lock.hold():
            if self._newer_saved(version):
                return "superseded"
            if self._base is None or self._base[0].id != delta.base or self._base[1] != self._stamp():
                return "rebase"
            meta = {"version": version, "model_id": delta.model_id}
            try:
                size = write_guard_delta(delta, self.index_dir, meta)
            except OSError:
                log.exception("could not save the index delta to %s", self.index_dir)
                return "failed"
        log.debug("index v%d saved as a delta of %d exemplars (%d bytes)", version, delta.size, size)
        return "saved"

    def _write(self, image: Callable[[], GuardImage], digest: str | None, version: int) -> None:
        meta: dict[str, Any] = {"version": version} if digest is None else {"db_digest": digest, "version": version}
        with self.lock.hold():
            if self._newer_saved(version):
                return
            captured = image()
            try:
                manifest = write_guard_image(captured, self.index_dir, meta | {"model_id": captured.model_id})
            except OSError:
                log.exception("could not save the index artifact to %s", self.index_dir)
                return
            self._remember(image_base(captured, manifest))

    def _newer_saved(self, version: int) -> bool:
        """Whether the home holds `version` or a newer committed one (the caller holds the lock): another process
        may have saved it meanwhile, and an older version must never replace it."""
        saved = self._saved_version()
        return saved >= version and saved <= self._latest_version()

    def _saved_version(self) -> int:
        """The version the home's artifact holds (-1: none readable). While the folder is still this process's base,
        only the small delta is read, not the full manifest (~10 MB of JSON for the seed set)."""
        if self._base is not None and self._base[1] == self._stamp():
            base = self._base[0]
            try:
                found = read_guard_delta(self.index_dir, base.id)
            except IndexArtifactError:
                found = None
            return int((found[1] if found is not None else base.metadata).get("version", 0))
        try:
            return int(read_guard_metadata(self.index_dir).get("version", 0))
        except IndexArtifactError:
            return -1

    def _remember(self, base: ArtifactBase) -> None:
        """Record the full artifact now in the folder as this process's base (the caller holds the lock)."""
        self._base = (base, self._stamp())

    def _stamp(self) -> tuple[int, int, int]:
        try:
            st = (self.index_dir / "guard.json").stat()
        except FileNotFoundError:
            return (0, 0, 0)
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _latest_version(self) -> int:
        with self.sessions() as session:
            return IndexBuildRepository(session).latest_version()


def _replace_dir(directory: Path, files: dict[str, bytes]) -> None:
    """Write `files` into a fresh folder beside `directory`, then swap it in (a crash leaves one or the other)."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.db-", dir=directory.parent))
    try:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        old = directory.with_name(f".{directory.name}.old-db-{os.getpid()}")
        if directory.exists():
            os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
