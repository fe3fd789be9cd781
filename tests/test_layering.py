"""Architecture rules of STYLE.md, checked by scanning imports: the dependency direction is one way."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEB_AND_DB = ("service", "fastapi", "starlette", "sqlalchemy", "pydantic_settings", "alembic", "uvicorn")


def imports(package: str) -> list[tuple[Path, str]]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.extend((path, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((path, node.module))
    return found


def test_index_never_imports_web_or_database_code() -> None:
    bad = [(p.name, m) for p, m in imports("index") if m.split(".")[0] in WEB_AND_DB]
    assert not bad, f"index/ must stay a pure library: {bad}"


def test_service_uses_only_the_public_api_of_index() -> None:
    bad = [(p.name, m) for p, m in imports("service") if m.startswith("index.")]
    assert not bad, f"import these from `index` (export them in index/__init__.py): {bad}"


def test_migrations_import_only_the_database_layer() -> None:
    bad = [
        (p.name, m)
        for p, m in imports("migrations")
        if m.split(".")[0] in ("service", "index") and m not in ("service.db.engine", "service.db.models")
    ]
    assert not bad, f"migrations may import service.db.engine and service.db.models only: {bad}"


def test_service_layers_point_down() -> None:
    # api -> use cases -> repositories -> models/db: lower layers never import higher ones
    lower = {"usecases": ("service.api",), "db": ("service.api", "service.usecases", "service.cli")}
    bad = []
    for path, module in imports("service"):
        rel = path.relative_to(ROOT / "service")
        layer = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        bad.extend((str(rel), module) for banned in lower.get(layer, ()) if module.startswith(banned))
        if rel.parts[0] == "db" and rel.stem in ("models", "engine") and module.startswith("service.db.repositories"):
            bad.append((str(rel), module))
    assert not bad, f"a lower layer imports a higher one: {bad}"
