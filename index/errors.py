"""Error tree of the index library: no HTTP knowledge here, the service maps these to status codes."""

from __future__ import annotations


class LightguardError(Exception):
    """Base of every error raised by the `index` package."""


class ModelNotFoundError(LightguardError):
    """A model directory or ONNX artifact is missing."""


class ModelIntegrityError(LightguardError):
    """A model artifact does not match the checksum in its manifest."""


class IndexArtifactError(LightguardError):
    """An index artifact on disk is missing, truncated, corrupt or built for another model."""


class DuplicateExemplarError(LightguardError):
    """An exemplar id is already present in the store."""


class UnknownExemplarError(LightguardError):
    """An exemplar id is not present in the store."""


class UnknownLabelError(LightguardError):
    """A label (category or topic) is not known to the guard."""


class InvalidInputError(LightguardError):
    """A text or argument is not acceptable (empty text, wrong dimension, ...)."""


class CostLimitError(InvalidInputError):
    """Classifying the texts would take more model runs than allowed; planning stopped as soon as it knew."""

    def __init__(self, cost: int, limit: int, texts_planned: int) -> None:
        super().__init__(
            f"the texts need at least {cost} model runs ({texts_planned} text(s) planned before stopping); "
            f"the limit is {limit}"
        )
        self.cost = cost
        self.limit = limit
        self.texts_planned = texts_planned


class DatasetError(LightguardError):
    """A labelled input file could not be read or has the wrong shape."""


class TrainingError(LightguardError):
    """A training configuration or run is invalid."""


class ExportError(LightguardError):
    """An export failed or produced vectors that disagree with the source model."""
