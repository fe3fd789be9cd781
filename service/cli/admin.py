"""Operator commands mounted on the `lightguard` CLI: serve, topics, index, keys (`register(app)`)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from service.cli.keys import keys_app
from service.settings import Settings

if TYPE_CHECKING:
    from service.db.models import Topic
    from service.db.repositories import TopicRepository
    from service.usecases.lifecycle import IndexLifecycle
    from service.usecases.topics import TopicService

T = TypeVar("T")

err = Console(stderr=True)
out = Console()

topics_app = typer.Typer(help="Custom topic filters (the database is the source of truth).", no_args_is_help=True)
index_app = typer.Typer(help="The FAISS index derived from the database.", no_args_is_help=True)

OFFLINE_NOTE = (
    "A running server on this database picks CLI changes up within LIGHTGUARD_FOLLOW_INTERVAL_S (0.5 s by default)."
)


def _run_topics(action: Callable[[TopicService, IndexLifecycle], Awaitable[T]]) -> T:
    """`action` on a TopicService over one session of the configured database (the action loads the index with the
    lifecycle when it needs it); a request the schema rejects exits 2, a ServiceError exits 1, each with its message."""
    from pydantic import ValidationError

    from service.context import open_context
    from service.errors import ServiceError
    from service.usecases.topics import TopicService

    ctx = open_context(Settings())

    async def run() -> T:
        session = ctx.sessions()
        try:
            return await action(TopicService(session, ctx.edits, ctx.limits), ctx.lifecycle)
        finally:
            session.close()
            await ctx.edits.flush()  # the artifact an edit saves in the background, before the process exits

    try:
        return asyncio.run(run())
    except ValidationError as exc:
        err.print(f"[red]{exc}")
        raise typer.Exit(2) from exc
    except ServiceError as exc:
        err.print(f"[red]{exc.detail}")
        raise typer.Exit(1) from exc
    finally:
        ctx.close()


def _find_topic(repo: TopicRepository, topic: str) -> Topic:
    """A topic by id or name, or a usage error naming the fix."""
    found = repo.get(int(topic)) if topic.isdigit() else repo.get_by_name(topic)
    if found is None:
        raise typer.BadParameter(f"no topic {topic!r}; see `lightguard topics list`")
    return found


def register(app: typer.Typer) -> None:
    """Add `serve`, `topics`, `index` and `keys` to the `lightguard` app."""
    app.command("serve")(serve)
    app.add_typer(topics_app, name="topics")
    app.add_typer(index_app, name="index")
    app.add_typer(keys_app, name="keys")  # service/cli/keys.py


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Worker processes; each holds the index in memory and follows the others' changes through the "
            "database (LIGHTGUARD_FOLLOW_INTERVAL_S).",
        ),
    ] = 1,
) -> None:
    """Migrate, seed the taxonomy on first run, load or build the index, serve the HTTP API."""
    import logging

    import uvicorn

    from service.app import create_app

    if workers > 1:
        _serve_workers(host, port, log_level, workers)
        return
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(Settings()), host=host, port=port, log_level=log_level)


def _serve_workers(host: str, port: int, log_level: str, workers: int) -> None:
    """uvicorn's multi-process supervisor on a listening socket from `listening_socket` (logs carry the pid)."""
    import copy

    import uvicorn
    from uvicorn.config import LOGGING_CONFIG
    from uvicorn.supervisors import Multiprocess

    Settings()  # a bad configuration fails here, once, not in every worker
    log_config = copy.deepcopy(LOGGING_CONFIG)  # applied in each worker: the service's own log lines, with the pid
    log_config["formatters"]["service"] = {"format": "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"}
    log_config["handlers"]["service"] = {"class": "logging.StreamHandler", "formatter": "service"}
    log_config["loggers"]["service"] = {"handlers": ["service"], "level": log_level.upper(), "propagate": False}
    config = uvicorn.Config(
        "service.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        log_config=log_config,
    )
    Multiprocess(config, sockets=[listening_socket(host, port)]).run()


def listening_socket(host: str, port: int) -> socket.socket:
    """The socket the workers share, bound as IPPROTO_TCP.

    uvicorn binds it with protocol 0; accepted connections inherit that, and the asyncio event loop turns TCP_NODELAY
    on only for IPPROTO_TCP sockets, so each kept-alive response would wait for a delayed ACK (STACK-NOTES). uvloop,
    uvicorn's default when installed, sets TCP_NODELAY either way; this keeps `--loop asyncio` deployments right too.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


# ---------------------------------------------------------------------------- topics
@topics_app.command("list")
def topics_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List categories and custom topics."""
    from service.context import open_context
    from service.db.engine import session_scope
    from service.db.repositories import TopicRepository

    ctx = open_context(Settings())
    try:
        with session_scope(ctx.sessions) as session:
            repo = TopicRepository(session)
            counts = repo.exemplar_counts()
            rows = [
                {
                    "id": t.id,
                    "name": t.name,
                    "kind": t.kind,
                    "action": t.action,
                    "enabled": t.enabled,
                    "threshold": t.threshold,
                    "threshold_source": t.threshold_source,
                    "examples": counts.get(t.id, 0),
                }
                for t in repo.find()
            ]
    finally:
        ctx.close()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "name", "kind", "action", "enabled", "threshold", "examples")
    for r in rows:
        threshold = "default" if r["threshold"] is None else f"{r['threshold']:.3f} ({r['threshold_source']})"
        table.add_row(
            str(r["id"]),
            str(r["name"]),
            str(r["kind"]),
            str(r["action"]),
            str(r["enabled"]),
            threshold,
            str(r["examples"]),
        )
    out.print(table)


@topics_app.command("add")
def topics_add(
    name: Annotated[str, typer.Argument(help="Topic name (reported as `category`).")],
    example: Annotated[list[str], typer.Option("--example", "-e", help="A prompt that should trigger it (repeat).")],
    allow: Annotated[list[str] | None, typer.Option("--allow", "-a", help="A hard negative (repeat).")] = None,
    description: Annotated[str, typer.Option(help="What the topic covers.")] = "",
    action: Annotated[str, typer.Option(help="block or flag.")] = "block",
    threshold: Annotated[float | None, typer.Option(help="Fixed threshold; default: calibrated.")] = None,
) -> None:
    """Create a custom topic from example prompts (indexed and calibrated at once)."""
    from service.schemas.topics import TopicCreate
    from service.usecases.topics import TopicSpec

    async def create(topics: TopicService, index: IndexLifecycle) -> tuple[int, float | None]:
        body = TopicCreate(
            name=name,
            description=description,
            action=action,
            examples=example,
            allow_examples=allow or [],
            threshold=threshold,
        )
        await index.load_or_build()
        created = await topics.create(TopicSpec(**body.model_dump()))
        return created.topic.id, created.topic.threshold

    topic_id, calibrated = _run_topics(create)
    out.print(f"topic {name!r} created (id {topic_id}, threshold {calibrated})")
    err.print(OFFLINE_NOTE)


@topics_app.command("remove")
def topics_remove(topic: Annotated[str, typer.Argument(help="Topic id or name.")]) -> None:
    """Delete a custom topic and its examples."""

    async def delete(topics: TopicService, index: IndexLifecycle) -> None:
        found = _find_topic(topics.topics, topic)
        await index.load_or_build()
        await topics.delete(found.id)

    _run_topics(delete)
    out.print(f"topic {topic!r} removed")
    err.print(OFFLINE_NOTE)


def read_labelled(path: Path, topic: str) -> tuple[list[str], list[bool]]:
    """`{text, match}` or `{text, label}` lines; a label is true/false, 1/0, or a topic name (match = same name)."""
    texts: list[str] = []
    labels: list[bool] = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise typer.BadParameter(f"{path}, line {n}: not JSON ({exc})") from exc
            value = obj.get("match", obj.get("label")) if isinstance(obj, dict) else None
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or value is None:
                raise typer.BadParameter(f'{path}, line {n}: need {{"text": ..., "match": true/false}} or "label"')
            if isinstance(value, bool | int):
                labels.append(bool(value))
            elif isinstance(value, str):
                labels.append(value == topic)
            else:
                raise typer.BadParameter(f"{path}, line {n}: match/label must be true/false, 1/0 or a topic name")
            texts.append(obj["text"])
    return texts, labels


@topics_app.command("suggest-threshold")
def topics_suggest_threshold(
    topic: Annotated[str, typer.Argument(help="Topic id or name.")],
    input_path: Annotated[Path, typer.Option("--input", "-i", help="JSONL of {text, match} or {text, label}.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    target_fmr: Annotated[
        float | None,
        typer.Option("--target-fmr", help="False-match rate for the suggested threshold (default: the index's)."),
    ] = None,
) -> None:
    """Precision / recall / F1 / false-match rate on labelled texts, and suggested thresholds (changes nothing)."""
    from service.schemas.topics import TopicEvaluate, TopicEvaluation

    if not input_path.is_file():
        raise typer.BadParameter(f"--input {input_path} does not exist")

    async def evaluate(topics: TopicService, index: IndexLifecycle) -> TopicEvaluation:
        found = _find_topic(topics.topics, topic)
        texts, labels = read_labelled(input_path, found.name)
        # the schema checks the request as the API would (a left-out target_fmr means the index's), before the
        # index loads
        fields = {"texts": texts, "labels": labels} | ({} if target_fmr is None else {"target_fmr": target_fmr})
        body = TopicEvaluate.model_validate(fields)
        await index.load_or_build()
        texts, labels = body.pairs()
        report = await topics.evaluate(found.id, texts, labels, body.target_fmr)
        return TopicEvaluation.model_validate(report, from_attributes=True)

    report = _run_topics(evaluate)
    if as_json:
        typer.echo(report.model_dump_json(indent=2, exclude={"scores"}))
        return
    out.print(
        f"topic {report.name!r}: {report.items} items ({report.positives} match, {report.negatives} do not), "
        f"target false-match rate {report.target_fmr:g}"
    )
    table = Table("threshold", "value", "precision", "recall", "F1", "FMR")
    for name, m in (
        ("current", report.current),
        ("max-F1", report.suggested.best_f1),
        ("target-FMR", report.suggested.target_fmr),
    ):
        table.add_row(
            name,
            f"{m.threshold:.4f}",
            f"{m.precision:.3f}",
            f"{m.recall:.3f}",
            f"{m.f1:.3f}",
            f"{m.false_match_rate:.3f}",
        )
    out.print(table)
    err.print('apply one with `PATCH /v1/topics/{id}` and {"threshold": ...} (nothing was changed)')


# ---------------------------------------------------------------------------- index
@index_app.command("rebuild")
def index_rebuild(
    server: Annotated[
        str | None,
        typer.Option(
            envvar="LIGHTGUARD_SERVER_URL",
            help="Rebuild on this running server (e.g. http://127.0.0.1:8000) instead of in this process.",
        ),
    ] = None,
    key: Annotated[str | None, typer.Option(envvar="LIGHTGUARD_API_KEY", help="Admin key for --server.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Re-embed every exemplar, save the artifact and bump the version, with a progress bar (exit 1 if another
    build is running: one at a time across every process on the database)."""
    from service.cli.rebuild import rebuild

    rebuild(server, key, quiet)


@index_app.command("verify")
def index_verify() -> None:
    """Check that the saved index holds exactly the database's exemplars and labels (exit 1 if not)."""
    from index import IndexArtifactError, load_guard
    from service.context import open_context
    from service.db.engine import session_scope
    from service.db.repositories import topics_with_exemplars
    from service.usecases.catchup import verify_guard

    settings = Settings()
    ctx = open_context(settings)
    try:
        try:
            guard = load_guard(settings.index_dir, ctx.runtime.encoder)
        except IndexArtifactError as exc:
            err.print(f"[red]{exc}; run `lightguard index rebuild`")
            raise typer.Exit(1) from exc
        with session_scope(ctx.sessions) as session:
            report = verify_guard(guard, topics_with_exemplars(session))
    finally:
        ctx.close()
    for problem in report.problems:
        err.print(f"[red]{problem}")
    if not report.ok:
        raise typer.Exit(1)
    out.print(f"ok: database and index agree ({report.db_exemplars} exemplars)")
