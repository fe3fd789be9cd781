"""Where this checkout keeps the files tests read: the shipped data and the exported models."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = REPO / "data"
MODELS_DIR = REPO / "models"
