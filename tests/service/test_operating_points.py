"""LIGHTGUARD_OPERATING_POINT: a named threshold from data/operating_points.json replaces the shipped one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from index import GuardConfig, InvalidInputError
from service.operating_points import apply_operating_point, load_operating_points
from service.settings import Settings


def points_file(tmp_path: Path) -> Path:
    path = tmp_path / "operating_points.json"
    path.write_text(json.dumps({"_note": "x", "points": {"strict": 0.4, "balanced": 0.6, "permissive": 0.8}}))
    return path


def test_named_point_sets_the_threshold_and_shifts_category_thresholds(tmp_path: Path) -> None:
    config = GuardConfig(threshold=0.6, category_thresholds={"hate": 0.7})
    strict = apply_operating_point(config, "strict", points_file(tmp_path))
    assert strict.threshold == 0.4 and strict.category_thresholds == {"hate": 0.5}
    assert apply_operating_point(config, None, tmp_path / "missing.json") is config


def test_missing_or_bad_file_says_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="LIGHTGUARD_OPERATING_POINT"):
        apply_operating_point(GuardConfig(), "strict", tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    with pytest.raises(InvalidInputError, match="not an operating-points file"):
        load_operating_points(bad)


def test_setting_accepts_only_known_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIGHTGUARD_OPERATING_POINT", "permissive")
    assert Settings().operating_point == "permissive"
    monkeypatch.setenv("LIGHTGUARD_OPERATING_POINT", "lenient")
    with pytest.raises(ValueError, match="strict"):
        Settings()


def test_shipped_points_are_ordered() -> None:
    shipped = Path(__file__).resolve().parents[2] / "data" / "operating_points.json"
    points = load_operating_points(shipped)
    assert points["strict"] <= points["balanced"] <= points["permissive"]
