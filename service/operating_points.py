"""Named operating points: the built-in threshold an operator picks by name (LIGHTGUARD_OPERATING_POINT)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Literal

from index import GuardConfig, InvalidInputError

OperatingPoint = Literal["strict", "balanced", "permissive"]


def load_operating_points(path: Path) -> dict[str, float]:
    """The named thresholds of `operating_points.json` (`python -m benchmarks.evaluation.evaluate --write-config`).

    Raises:
        InvalidInputError: the file is missing or malformed.
    """
    try:
        points = json.loads(path.read_text(encoding="utf-8"))["points"]
        return {str(name): float(t) for name, t in points.items()}
    except FileNotFoundError as exc:
        raise InvalidInputError(
            f"{path} does not exist: unset LIGHTGUARD_OPERATING_POINT or run"
            " `python -m benchmarks.evaluation.evaluate --write-config`"
        ) from exc
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidInputError(f"{path} is not an operating-points file ({exc}); rebuild it with evaluate.py") from exc


def apply_operating_point(config: GuardConfig, point: OperatingPoint | None, path: Path) -> GuardConfig:
    """`config` with the built-in threshold of the named point; per-category thresholds move by the same amount,
    so their offsets from the global threshold (chosen on dev) are kept. None: `config` unchanged."""
    if point is None:
        return config
    points = load_operating_points(path)
    if point not in points:
        raise InvalidInputError(f"{path} has no operating point {point!r}; it has {', '.join(sorted(points))}")
    shift = points[point] - config.threshold
    categories = {name: round(t + shift, 4) for name, t in config.category_thresholds.items()}
    return replace(config, threshold=points[point], category_thresholds=categories)
