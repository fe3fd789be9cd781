"""The labels a guard knows: the built-in categories (fixed when the guard is made, in column order), `safe`, and
custom topics (added and removed live)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

from index.errors import UnknownLabelError
from index.types import SAFE, Exemplar, Label


class LabelSet:
    """Labels by name; `builtin` lists the built-in labels (safe included) in the column order of every built-in
    distribution. Not thread-safe: the guard's lock covers it."""

    def __init__(self, labels: Iterable[Label]) -> None:
        self._labels: dict[str, Label] = {label.name: label for label in labels}
        if SAFE not in self._labels:
            self._labels[SAFE] = Label(SAFE, "safe", action="flag")
        self.builtin = [n for n, lab in self._labels.items() if lab.kind != "custom"]
        self.column = {n: i for i, n in enumerate(self.builtin)}

    def __getitem__(self, name: str) -> Label:
        return self._labels[name]

    def get(self, name: str) -> Label | None:
        return self._labels.get(name)

    def as_dict(self) -> dict[str, Label]:
        return dict(self._labels)

    def require(self, name: str) -> Label:
        label = self._labels.get(name)
        if label is None:
            raise UnknownLabelError(f"unknown label {name!r}")
        return label

    def put(self, label: Label) -> None:
        """Add or change a label; built-in ones can only change (the columns are fixed)."""
        if label.kind != "custom" and label.name not in self.column:
            raise UnknownLabelError(
                f"built-in label {label.name!r} is not part of this index; rebuild the index to add categories"
            )
        self._labels[label.name] = label

    def remove(self, name: str) -> None:
        del self._labels[name]

    def column_of(self, exemplar: Exemplar) -> int:
        """The built-in column an exemplar of a built-in label votes for (its allow-examples vote `safe`)."""
        return self.column[SAFE if exemplar.role == "allow" else exemplar.label]

    def unsafe_columns(self) -> NDArray[np.bool_]:
        """Per built-in column: an enabled unsafe category (whose mass makes the unsafe score)."""
        return np.asarray([n != SAFE and self._labels[n].enabled for n in self.builtin], dtype=bool)
