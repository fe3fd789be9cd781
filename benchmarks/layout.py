"""Where the checkout being measured keeps its data, models and scratch files: the folder above this package."""

from __future__ import annotations

from pathlib import Path

# The jobs measure this checkout (its data/, models/, var/ and reports/), run from it or installed editable from it.
REPO = Path(__file__).resolve().parent.parent
DATA_DIR = REPO / "data"
MODELS_DIR = REPO / "models"
REPORTS_DIR = REPO / "reports"
VAR_DIR = REPO / "var"
