"""The operator console: static HTML/CSS/JS under service/console, served at /console by the app itself.

The page calls the public HTTP API only (everything it does can be done with curl), so the files need no key: the
API answers each call according to the key the page sends. `GET /v1/me` tells the page who it is signed in as.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from service.deps import ClassifyKeyDep
from service.exception_handlers import error_responses
from service.schemas.decisions import IdentityRead

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"

router = APIRouter(tags=["console"])


@router.get("/v1/me", response_model=IdentityRead, responses=error_responses(401, 403, 422, 503))
async def who_am_i(key: ClassifyKeyDep) -> IdentityRead:
    """The caller's role: any active key (or none on an open server); 401 without a key, 403 for an unknown one."""
    if key is None:
        return IdentityRead(open=True, role="admin", key_id=None)
    return IdentityRead(open=False, role="admin" if key.role == "admin" else "classify", key_id=key.id)


@router.get("/console", include_in_schema=False)
async def console_root() -> RedirectResponse:
    # relative URLs in index.html (console.css, js/main.js) resolve under /console/ only with the slash
    return RedirectResponse("/console/", status_code=307)


def mount_console(app: FastAPI) -> None:
    """Serve service/console at /console/ (index.html for the folder itself)."""
    app.include_router(router)
    app.mount("/console", StaticFiles(directory=CONSOLE_DIR, html=True), name="console")
