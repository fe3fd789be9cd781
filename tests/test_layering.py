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
    lower = {
        "usecases": ("service.api", "service.cli"),
        "db": ("service.api", "service.usecases", "service.cli", "service.serving"),
        # the live index state and its scheduling know nothing of the database or the use cases that drive them
        "serving": ("service.api", "service.usecases", "service.cli", "service.db"),
    }
    bad = []
    for path, module in imports("service"):
        rel = path.relative_to(ROOT / "service")
        layer = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        bad.extend((str(rel), module) for banned in lower.get(layer, ()) if module.startswith(banned))
        if rel.parts[0] == "db" and rel.stem in ("models", "engine") and module.startswith("service.db.repositories"):
            bad.append((str(rel), module))
    assert not bad, f"a lower layer imports a higher one: {bad}"


def test_routes_go_through_use_cases() -> None:
    """Routes and their dependencies reach the database only through use cases (the request's session aside)."""
    bad = [
        (str(p.relative_to(ROOT)), m)
        for p, m in imports("service")
        if (p.parent.name == "api" or p.name == "deps.py") and m.startswith(("service.db.models", "service.db.repo"))
    ]
    assert not bad, f"route modules import ORM models or repositories; add a use case: {bad}"


def test_use_cases_return_domain_types_not_http_schemas() -> None:
    web = ("fastapi", "starlette", "service.schemas", "service.api")
    bad = [(p.name, m) for p, m in imports("service") if p.parent.name == "usecases" and m.startswith(web)]
    assert not bad, f"use cases build HTTP schemas; return a domain type and map it in service/api: {bad}"


def test_service_asks_nothing_of_the_engines_under_index() -> None:
    """FAISS, ONNX Runtime, tokenizers and torch are index's business: the service uses index's public API."""
    engines = ("faiss", "onnxruntime", "tokenizers", "torch", "sentence_transformers", "transformers")
    bad = [(str(p.relative_to(ROOT)), m) for p, m in imports("service") if m.split(".")[0] in engines]
    assert not bad, f"go through `index` (add a thin public function there if one is missing): {bad}"


def test_no_module_imports_another_modules_private_names() -> None:
    bad = []
    for path in sorted((ROOT / "service").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(("service", "index")):
                bad.extend((path.name, node.module, a.name) for a in node.names if a.name.startswith("_"))
    assert not bad, f"private names imported across modules: {bad}"


def test_index_takes_its_configuration_from_the_caller() -> None:
    """index/ is a library: no environment variables, and no data or model folders found relative to its own files
    (the service's Settings and the benchmarks' layout say where things are)."""
    bad = []
    for path in sorted((ROOT / "index").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv"):
                bad.append((path.name, f"os.{node.attr}"))
            elif isinstance(node, ast.Name) and node.id == "__file__":
                bad.append((path.name, "__file__"))
    assert not bad, f"index/ reads its configuration itself: {bad}"


def test_only_the_bulk_engine_imports_ray_and_only_lazily() -> None:
    """Ray is an optional extra: the server never imports it, and the bulk engine only inside its functions."""
    engine = ROOT / "service" / "bulk" / "ray_engine.py"
    bad = [(str(p.relative_to(ROOT)), m) for p, m in imports("service") if m.split(".")[0] == "ray" and p != engine]
    assert not bad, f"only service/bulk/ray_engine.py may import ray: {bad}"
    top_level = [
        alias.name if isinstance(node, ast.Import) else node.module
        for node in ast.parse(engine.read_text(encoding="utf-8")).body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else node.names[:1])
    ]
    assert not [m for m in top_level if m and m.split(".")[0] in ("ray", "pyarrow")], "import ray inside functions"
    lazy = [(str(p.relative_to(ROOT)), m) for p, m in imports("service") if m == "service.bulk.ray_engine"]
    assert {p for p, _ in lazy} <= {"service/cli/main.py"}, f"only the CLI reaches the Ray engine: {lazy}"
