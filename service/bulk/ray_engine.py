"""Bulk classification on Ray Data: JSONL / Parquet in, one guard per actor (class-based `map_batches`), rows out.

Ray is an optional extra (`pip install -e ".[ray]"`): this module imports it only inside its functions, and nothing
else under service/ imports it (tests/test_layering.py), so the server never pays for it.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from service.bulk.rows import Row, classify_rows, jsonl_lines, parse_line, parse_record
from service.context import open_guard
from service.settings import Settings

if TYPE_CHECKING:
    import pyarrow as pa

Format = Literal["jsonl", "parquet"]
JSONL_SUFFIXES = (".jsonl", ".json")
# Columns of a Parquet output (a JSONL output is the local engine's lines, byte for byte).
# Reading and writing take no CPU slot: they are light next to the model, and N actors then fill N cores.
IO_CPUS = 0
VERDICT_COLUMNS = ("flagged", "score", "category", "categories", "action", "threshold", "error")
# Ray restarts a dead actor without limit (Ray Data's default, kept: on a long job a node can be lost more than once);
# the batch it was classifying runs again up to TASK_RETRIES times (Ray Data's default is -1, forever: a batch that
# kills every process it reaches, say one that runs it out of memory, would then never let the job end).
MAX_RESTARTS = -1
TASK_RETRIES = 3


class BulkInputError(ValueError):
    """The input or output path cannot be used; the message says why and what to give instead."""


class BulkJobError(RuntimeError):
    """The job stopped (a batch still failed after its retries, an actor could not start); no output was written."""


@dataclass(frozen=True, slots=True)
class RayJob:
    """One bulk run: where rows come from and go, and how much of the cluster it uses."""

    input_path: Path
    output_path: Path
    address: str | None = None  # None: start a local Ray on this machine
    actors: int = 1  # guard actors, one CPU each
    batch_size: int = 256  # rows per `map_batches` call (one guard call)
    task_retries: int = TASK_RETRIES  # runs of a batch again after its actor died (max_task_retries)


def input_format(path: Path) -> Format:
    """The format of a file, or of the files of a folder (all one format).

    Raises:
        BulkInputError: missing path, unknown extension, an empty folder or one mixing formats.
    """
    if not path.exists():
        raise BulkInputError(f"{path} does not exist; give a .jsonl or .parquet file, or a folder of them")
    files = (
        [p for p in sorted(path.iterdir()) if p.is_file() and not p.name.startswith((".", "_"))]
        if path.is_dir()
        else [path]
    )
    kinds = {_format_of(p) for p in files} - {None}
    if len(kinds) != 1:
        found = "no .jsonl / .json / .parquet file" if not kinds else "both JSONL and Parquet files"
        raise BulkInputError(f"{path}: found {found}; give one format per run")
    kind = kinds.pop()
    assert kind is not None
    return kind


def output_format(path: Path) -> Format:
    """Parquet for a `.parquet` output, JSONL for `.jsonl` / `.json`."""
    kind = _format_of(path)
    if kind is None:
        raise BulkInputError(f"{path}: name the output *.parquet or *.jsonl (the extension picks the format)")
    return kind


def _format_of(path: Path) -> Format | None:
    if path.suffix == ".parquet":
        return "parquet"
    return "jsonl" if path.suffix in JSONL_SUFFIXES else None


class GuardActor:
    """A Ray Data actor: loads the guard once (the loader the server and the local CLI use), then classifies batches."""

    def __init__(self, settings: Settings, source: Format, sink: Format) -> None:
        self.guard = open_guard(settings)
        self.source = source
        self.sink = sink
        # Every verdict of one guard has the same categories: their Arrow type, for a batch of only bad rows too.
        self.categories_type = _arrow().array([self.guard.classify(["hello"])[0].categories]).type

    def __call__(self, batch: pa.Table) -> pa.Table:
        paths = [os.path.basename(str(p)) for p in batch.column("path").to_pylist()]
        if self.source == "jsonl":
            parsed = [
                parse_line(line, where) for line, where in zip(batch.column("text").to_pylist(), paths, strict=True)
            ]
        else:
            records = batch.select(["id", "text"]).to_pylist()
            parsed = [parse_record(record, where) for record, where in zip(records, paths, strict=True)]
        rows = classify_rows(self.guard, parsed)
        return self._lines(rows) if self.sink == "jsonl" else self._table(rows)

    def _lines(self, rows: list[Row]) -> pa.Table:
        pa = _arrow()
        return pa.table({"line": pa.array([json.dumps(row, ensure_ascii=False) for row in rows], pa.string())})

    def _table(self, rows: list[Row]) -> pa.Table:
        pa = _arrow()
        ids = [row.get("id") for row in rows]
        try:
            id_column = pa.array(ids)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # ids of mixed types: Parquet needs one, text holds them all
            id_column = pa.array([None if i is None else str(i) for i in ids], pa.string())
        types = {
            "flagged": pa.bool_(),
            "score": pa.float64(),
            "category": pa.string(),
            "categories": self.categories_type,
            "action": pa.string(),
            "threshold": pa.float64(),
            "error": pa.string(),
        }
        columns = {"id": id_column} | {
            name: pa.array([row.get(name) for row in rows], types[name]) for name in VERDICT_COLUMNS
        }
        return pa.table(columns)


def run(settings: Settings, job: RayJob, *, actor: type[GuardActor] = GuardActor) -> int:
    """Classify `job.input_path` into `job.output_path` (a folder of part files) on Ray; returns the rows written.

    The part files are written into a hidden staging folder beside the output, renamed to the output once the job
    has finished: an output folder is always a whole job's, never a failed one's first parts.

    Args:
        actor: the class Ray Data runs as actors (a seam for tests, which inject faults into a subclass).

    Raises:
        BulkInputError: the input or output path cannot be used.
        BulkJobError: the job stopped (a batch still failed after its retries, an actor could not start); the
            staging folder is removed.
    """
    import ray

    source, sink = input_format(job.input_path), output_format(job.output_path)
    if job.output_path.exists() and (not job.output_path.is_dir() or any(job.output_path.iterdir())):
        # Ray appends part files to a folder: into an old output, rows would be counted (and read) twice.
        raise BulkInputError(f"{job.output_path} exists; remove it or name another output folder")
    # Migrate, seed and build the index here, once, so that the actors only load it (never build it side by side).
    open_guard(settings)
    if not ray.is_initialized():
        if job.address is None:
            ray.init(include_dashboard=False)
        else:
            ray.init(address=job.address)
    actor_settings = settings.model_copy(
        update={"threads": 1, "search_threads": 1, "auto_migrate": False, "seed": False}
    )
    # A dead actor is restarted and its unfinished batches run again (MAX_RESTARTS, job.task_retries); a batch's
    # output counts only once returned, so a retried one is neither lost nor passed on twice. A write task that dies is
    # retried by Ray under the same file name (Ray's contract: one name per write and task index), so it leaves no
    # second part. A block that still fails stops the job (no errored block is skipped): no row is dropped silently.
    # A row's own failure is caught in the actor (classify_rows) and becomes its `error`, so it retries nothing.
    context = ray.data.DataContext.get_current()
    context.max_errored_blocks = 0
    context.actor_task_retry_on_errors = False
    # Parquet's V2 reader lists files in a task of 1 CPU that `num_cpus` does not reach: with every core held by an
    # actor it never starts. The V1 reader honours IO_CPUS.
    context.use_datasource_v2 = False
    dataset = _read(source, job.input_path)
    with warnings.catch_warnings():
        # Ray 2.60 deprecates map_batches' **ray_remote_args (gone in 2.64) but names no parameter for these two:
        # they are the documented way to set them until then (pinned ray[data]; a test fails if they stop working).
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated", category=DeprecationWarning)
        results = dataset.map_batches(
            actor,
            fn_constructor_args=(actor_settings, source, sink),
            batch_format="pyarrow",
            batch_size=job.batch_size,
            compute=ray.data.ActorPoolStrategy(size=job.actors),
            num_cpus=1,
            max_restarts=MAX_RESTARTS,
            max_task_retries=job.task_retries,
        )
    staging = job.output_path.with_name(f".{job.output_path.name}.staging-{uuid.uuid4().hex[:12]}")
    try:
        if sink == "parquet":
            results.write_parquet(str(staging), ray_remote_args={"num_cpus": IO_CPUS})
        else:
            results.write_datasink(_jsonl_sink(str(staging)), ray_remote_args={"num_cpus": IO_CPUS})
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)  # the parts of a failed job are no output
        if not isinstance(exc, ray.exceptions.RayError):
            raise
        cause = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise BulkJobError(
            f"the job stopped and wrote nothing to {job.output_path}: {type(exc).__name__}: {cause} (a batch whose "
            f"actor died runs again at most {job.task_retries} times: --task-retries; the actors' logs say more)"
        ) from exc
    staging.mkdir(parents=True, exist_ok=True)  # no rows at all: Ray wrote nothing, not even the folder
    staging.replace(job.output_path)  # an empty output folder is replaced too (checked above)
    return _count_rows(job.output_path, sink)


def _read(source: Format, path: Path) -> Any:
    import ray

    if source == "jsonl":
        # Lines as text, parsed in the actor by the local engine's parser: a bad line becomes an error row rather
        # than failing the read (Ray's read_json stops at the first invalid line).
        # Not ray.data.read_text: it splits with str.splitlines, which also breaks at U+2028 and the other
        # separators a JSON string may hold (rows cut in two, ids lost); JSONL lines end at "\n" alone.
        datasource = _jsonl_datasource(str(path), [s[1:] for s in JSONL_SUFFIXES])
        return ray.data.read_datasource(datasource, num_cpus=IO_CPUS)
    dataset = ray.data.read_parquet(str(path), include_paths=True, num_cpus=IO_CPUS)
    if "text" not in dataset.schema().names:
        raise BulkInputError(f"{path}: no `text` column; bulk input rows are {{id, text}}")
    if "id" not in dataset.schema().names:
        dataset = dataset.add_column("id", lambda batch: _arrow().nulls(len(batch)), batch_format="pyarrow")
    return dataset


def _jsonl_datasource(path: str, extensions: list[str]) -> Any:
    """A Ray file datasource of JSONL files whose rows are `{text: line, path: file}`, one per `jsonl_lines` line."""
    from ray.data.datasource import FileBasedDatasource

    class JsonlLines(FileBasedDatasource):
        def _read_stream(self, f: Any, _path: str) -> Any:
            yield _arrow().table({"text": jsonl_lines(f.readall().decode("utf-8"))})

    return JsonlLines(path, include_paths=True, file_extensions=extensions)


def _jsonl_sink(path: str) -> Any:
    from ray.data.datasource import BlockBasedFileDatasink

    class JsonLinesDatasink(BlockBasedFileDatasink):
        """Writes the `line` column as is: the same bytes the local engine writes."""

        def __init__(self, path: str) -> None:
            super().__init__(path, file_format="jsonl")

        def write_block_to_file(self, block: Any, file: Any) -> None:
            for line in block.to_arrow().column("line").to_pylist():
                file.write((line + "\n").encode("utf-8"))

    return JsonLinesDatasink(path)


def _count_rows(path: Path, sink: Format) -> int:
    if sink == "parquet":
        import pyarrow.parquet as pq

        return sum(pq.ParquetFile(p).metadata.num_rows for p in path.glob("*.parquet"))
    return sum(p.read_bytes().count(b"\n") for p in path.glob("*.jsonl"))


def _arrow() -> Any:
    import pyarrow

    return pyarrow
