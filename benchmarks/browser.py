"""Headless Chromium for the console's browser tests and screenshots: Debian's package, driven by Playwright.

Playwright's own browser downloads fail on machines without internet, so it drives the system `chromium`
(`apt-get install chromium`). Without the background-networking flags Chromium's own connections (updates, sync,
QUIC probes) are refused by a closed network and slow the start.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
INSTALL_HINT = "install it with `apt-get install chromium` (Playwright's own browser downloads fail here)"


def chromium_path() -> str | None:
    """The Chromium executable: LIGHTGUARD_CHROMIUM, else `chromium` (Debian) or `chromium-browser` on PATH."""
    explicit = os.environ.get("LIGHTGUARD_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def launch_chromium(playwright: Playwright) -> Browser:
    """A headless Chromium from the system package; RuntimeError naming the fix when there is none."""
    path = chromium_path()
    if path is None:
        raise RuntimeError(f"no Chromium executable found; {INSTALL_HINT}")
    return playwright.chromium.launch(executable_path=path, args=list(CHROMIUM_ARGS), headless=True)
