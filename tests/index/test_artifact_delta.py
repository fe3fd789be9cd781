"""An edit's delta from the full artifact (index.artifact_delta): saved small, loaded to the same guard, and left out
(the full artifact alone is used) when it is corrupt, foreign or does not reproduce the saved guard."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from index import (
    Exemplar,
    Guard,
    HashingEncoder,
    Label,
    artifact_files,
    capture_delta,
    capture_guard,
    image_base,
    load_artifact,
    read_guard_metadata,
    save_guard,
    write_guard_delta,
    write_guard_image,
)
from index.artifact_delta import DELTA_FILE

COOKING = [
    Exemplar(101, "how long do I bake sourdough bread", "cooking"),
    Exemplar(102, "best oven temperature for a pizza", "cooking"),
    Exemplar(103, "knead the dough for ten minutes", "cooking"),
]
PROBES = ["how hot should the oven be for bread", "I will stab you", "what is the capital of france"]


def edit(guard: Guard) -> None:
    """What topic edits do between full builds: a topic with examples, a removed safe exemplar, a threshold."""
    guard.upsert_label(Label("cooking", "custom", action="flag"))
    guard.add_exemplars(COOKING)
    guard.remove_exemplars([14])
    guard.upsert_label(Label("hate", "builtin", action="flag", threshold=0.7))


def assert_same(loaded: Guard, live: Guard) -> None:
    assert loaded.labels == live.labels and list(loaded.labels) == list(live.labels)
    assert loaded.exemplars == live.exemplars
    ids = sorted(live.exemplars)
    np.testing.assert_array_equal(loaded.vectors(ids), live.vectors(ids))
    assert loaded.classify(PROBES) == live.classify(PROBES)


def saved_with_delta(guard: Guard, directory: Path) -> None:
    """The full artifact at version 1, the guard edited, its delta saved as version 2."""
    image = capture_guard(guard)
    base = image_base(image, write_guard_image(image, directory, {"version": 1}))
    edit(guard)
    delta = capture_delta(guard, base)
    assert delta is not None and len(delta.added) == len(COOKING) and delta.removed.tolist() == [14]
    write_guard_delta(delta, directory, {"version": 2})


def test_a_loaded_delta_gives_the_live_guard(toy_guard: Guard, encoder: HashingEncoder, tmp_path: Path) -> None:
    saved_with_delta(toy_guard, tmp_path / "g")
    loaded = load_artifact(tmp_path / "g", encoder)
    assert loaded.metadata == {"version": 2} == read_guard_metadata(tmp_path / "g")
    assert read_guard_metadata(tmp_path / "g", delta=False) == {"version": 1}
    assert_same(loaded.guard, toy_guard)
    assert DELTA_FILE not in artifact_files(tmp_path / "g")  # what a replica's copy in the database holds


def test_the_next_delta_is_saved_against_the_loaded_base(
    toy_guard: Guard, encoder: HashingEncoder, tmp_path: Path
) -> None:
    """A process that loaded base + delta saves its next edit against the same base (not base + delta)."""
    saved_with_delta(toy_guard, tmp_path / "g")
    loaded = load_artifact(tmp_path / "g", encoder)
    guard = loaded.guard
    guard.remove_label("cooking")
    delta = capture_delta(guard, loaded.base)
    assert delta is not None and delta.added == [] and delta.removed.tolist() == [14]
    write_guard_delta(delta, tmp_path / "g", {"version": 3})
    assert_same(load_artifact(tmp_path / "g", encoder).guard, guard)


def test_the_delta_is_small(toy_guard: Guard, tmp_path: Path) -> None:
    saved_with_delta(toy_guard, tmp_path / "g")
    full = sum(len(b) for b in artifact_files(tmp_path / "g").values())
    assert (tmp_path / "g" / DELTA_FILE).stat().st_size < full / 4


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "garbage"])
def test_a_corrupt_delta_is_left_out(
    toy_guard: Guard, encoder: HashingEncoder, tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    save_guard(toy_guard, tmp_path / "base", {"version": 1})
    saved_with_delta(toy_guard, tmp_path / "g")
    path = tmp_path / "g" / DELTA_FILE
    data = bytearray(path.read_bytes())
    if damage == "flip a byte":
        data[len(data) // 2] ^= 0xFF
    elif damage == "truncate":
        del data[len(data) // 2 :]
    else:
        data[:] = b"not a delta"
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="index.artifact"):
        loaded = load_artifact(tmp_path / "g", encoder)
    assert "index delta" in caplog.text and "not used" in caplog.text
    assert loaded.metadata == {"version": 1} == read_guard_metadata(tmp_path / "g")  # caught up from the change log
    assert_same(loaded.guard, load_artifact(tmp_path / "base", encoder).guard)


def test_a_delta_of_another_base_is_left_out(toy_guard: Guard, encoder: HashingEncoder, tmp_path: Path) -> None:
    save_guard(toy_guard, tmp_path / "other", {"version": 5})  # another full build: another base
    saved_with_delta(toy_guard, tmp_path / "g")
    (tmp_path / "other" / DELTA_FILE).write_bytes((tmp_path / "g" / DELTA_FILE).read_bytes())
    loaded = load_artifact(tmp_path / "other", encoder)
    assert loaded.metadata == {"version": 5}
    assert "cooking" not in loaded.guard.labels


def test_a_full_save_drops_the_delta(toy_guard: Guard, encoder: HashingEncoder, tmp_path: Path) -> None:
    saved_with_delta(toy_guard, tmp_path / "g")
    save_guard(toy_guard, tmp_path / "g", {"version": 9})
    assert not (tmp_path / "g" / DELTA_FILE).exists()
    assert load_artifact(tmp_path / "g", encoder).metadata == {"version": 9}


def test_a_delta_that_does_not_reproduce_the_order_is_left_out(
    toy_guard: Guard, encoder: HashingEncoder, tmp_path: Path
) -> None:
    """A topic of the base deleted and created again under its name comes last in the live guard but would keep its
    place in the base's: the delta is not used (the change log then brings the base level)."""
    toy_guard.upsert_label(Label("cooking", "custom", action="flag"))
    toy_guard.add_exemplars(COOKING)
    toy_guard.upsert_label(Label("travel", "custom", action="flag"))
    toy_guard.add_exemplars([Exemplar(201, "cheap flights to lisbon in may", "travel")])
    image = capture_guard(toy_guard)
    base = image_base(image, write_guard_image(image, tmp_path / "g", {"version": 1}))
    toy_guard.remove_label("cooking")
    toy_guard.upsert_label(Label("cooking", "custom", action="flag"))
    toy_guard.add_exemplars([Exemplar(301, "how long do I boil an egg", "cooking")])
    delta = capture_delta(toy_guard, base)
    assert delta is not None
    write_guard_delta(delta, tmp_path / "g", {"version": 2})
    loaded = load_artifact(tmp_path / "g", encoder)
    assert loaded.metadata == {"version": 1}
    assert sorted(loaded.guard.exemplars) == sorted(image_base(image, {}).exemplars)


def test_no_delta_once_a_build_replaced_the_head(toy_guard: Guard, tmp_path: Path) -> None:
    image = capture_guard(toy_guard)
    base = image_base(image, write_guard_image(image, tmp_path / "g", {"version": 1}))
    toy_guard.add_exemplars([Exemplar(40, "you are all idiots", "hate")])
    assert capture_delta(toy_guard, base) is not None
    toy_guard.fit_head()  # what only a full build (or a follower's refit) does: a new head
    assert capture_delta(toy_guard, base) is None


def test_no_delta_when_an_id_of_the_base_holds_another_exemplar(toy_guard: Guard, tmp_path: Path) -> None:
    """Not something the service's edits do (an exemplar changes by removal and addition under a new id), but the
    library allows it: a full save then, rather than a delta that would miss it."""
    image = capture_guard(toy_guard)
    base = image_base(image, write_guard_image(image, tmp_path / "g", {"version": 1}))
    toy_guard.remove_exemplars([14])
    toy_guard.add_exemplars([Exemplar(14, "translate goodbye into french", "safe")])
    assert capture_delta(toy_guard, base) is None
