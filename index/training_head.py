"""The end-to-end classification objective: a softmax head over the training labels, trained through the encoder.

Imported only by `index.training._fit` (it needs torch). The head reads the model's sentence embedding (mean-pooled,
L2-normalised, as served) and is dropped after training: serving refits its own linear head on the exported
encoder's vectors, as for every other loss.

With `distill` > 0 the loss also keeps each text's embedding near the one the *starting* encoder (a frozen copy)
gives it: distill x mean(1 - cosine). Cross-entropy alone moved written harmful requests towards `safe` and cost the
random split 0.06 AUPRC (docs/ablation.md, the softmax rows); the anchor lets the head pull only where it must.
Measured at W = 0.5, 2 and 10 (one epoch): it keeps the random split and that recall, and loses the out-of-source
gain with the drift (docs/ablation.md, "distillation anchor").
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

# Logit scale on the unit-norm embedding: a cosine classifier's temperature of 0.05, the scorers' usual range
# (index.scoring); without it a linear layer on unit vectors starts with near-uniform logits and learns slowly.
LOGIT_SCALE = 20.0


class SoftmaxHeadLoss(nn.Module):
    """Class-balanced cross-entropy of a linear head on the sentence embedding.

    Class weights are n / (classes * count) over the training labels, so a label with few rows (sexual_minors,
    threat) weighs as much in the loss as `safe` with thousands: the same balance as the serving head's fit.
    """

    def __init__(self, model: Any, labels: Sequence[int], distill: float = 0.0) -> None:
        super().__init__()
        self.model = model
        self.distill = float(distill)
        # Not a registered submodule: the trainer must neither optimise, move nor switch it to train mode (dropout).
        self._teacher: tuple[Any, ...] = ()
        if self.distill > 0:
            teacher = copy.deepcopy(model).eval()
            teacher.requires_grad_(False)
            self._teacher = (teacher,)
        counts = Counter(int(label) for label in labels)
        n_labels = max(counts) + 1
        weights = [len(labels) / (len(counts) * counts[i]) if counts[i] else 0.0 for i in range(n_labels)]
        dim = int(model.get_embedding_dimension())
        self.classifier = nn.Linear(dim, n_labels, device=model.device)
        class_weights = torch.tensor(weights, dtype=torch.float32, device=model.device)
        self.register_buffer("class_weights", class_weights)
        self.loss_fct = nn.CrossEntropyLoss(weight=class_weights)

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> Tensor:
        (features,) = list(sentence_features)
        anchor = self._anchor(dict(features))  # a copy: sentence-transformers modules add keys to the dict they get
        embedding = self.model(features)["sentence_embedding"]
        logits = LOGIT_SCALE * self.classifier(embedding.to(self.classifier.weight.dtype))
        loss: Tensor = self.loss_fct(logits, labels.view(-1))
        if anchor is not None:
            drift = 1.0 - nn.functional.cosine_similarity(embedding.float(), anchor.float(), dim=-1)
            loss = loss + self.distill * drift.mean()
        return loss

    def _anchor(self, features: dict[str, Tensor]) -> Tensor | None:
        if not self._teacher:
            return None
        with torch.no_grad():
            anchor: Tensor = self._teacher[0](features)["sentence_embedding"]
        return anchor

    def get_config_dict(self) -> dict[str, Any]:
        return {"num_labels": self.classifier.out_features, "logit_scale": LOGIT_SCALE, "distill": self.distill}
