"""The Encoder protocol on a sentence-transformers directory run by torch (the GPU device run's evaluation).

Tokenisation, length-sorted batching, mean pooling and L2 normalisation are the ONNX encoder's
(index/encoding/onnx.py), so the vectors are the fp32 ONNX export's up to float error; on CUDA ~70k texts embed in
seconds where the int8 ONNX graph on 16 CPU cores takes minutes. `known_ids` guards a base packed with only the
dataset's vocabulary rows (benchmarks/training/gpu_pack.py): a token outside it raises instead of reading a zero row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from index.errors import InvalidInputError
from index.types import Vectors

MAX_BATCH_TOKENS = 32_768  # rows x padded width per forward pass


class TorchEncoder:
    """Encoder on a sentence-transformers directory (BERT-style transformer + mean pooling), fp32, CPU or CUDA."""

    def __init__(
        self, st_dir: Path, name: str, device: str = "cpu", max_tokens: int = 256, known_ids: Collection[int] = ()
    ) -> None:
        import torch
        from tokenizers import Tokenizer
        from transformers import AutoModel

        self._torch = torch
        self._device = device
        self._model: Any = AutoModel.from_pretrained(str(st_dir), local_files_only=True).to(device).eval()
        tokenizer = str(Path(st_dir) / "tokenizer.json")
        self._tokenizer = Tokenizer.from_file(tokenizer)
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=max_tokens)
        self._span_tokenizer = Tokenizer.from_file(tokenizer)
        self._span_tokenizer.no_padding()
        self._span_tokenizer.no_truncation()
        self._max_tokens = max_tokens
        self._known = np.zeros(self._model.config.vocab_size, dtype=bool)
        self._known[list(known_ids) or slice(None)] = True
        digest = hashlib.sha256()
        for tensor in self._model.state_dict().values():
            digest.update(tensor.detach().float().cpu().numpy().tobytes())
        self._model_id = f"{name}:torch-fp32:{digest.hexdigest()[:12]}"

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dim(self) -> int:
        return int(self._model.config.hidden_size)

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def token_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        return [
            [span for span, special in zip(enc.offsets, enc.special_tokens_mask, strict=True) if not special]
            for enc in self._span_tokenizer.encode_batch(list(texts))
        ]

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> Vectors:
        if isinstance(texts, str):
            raise InvalidInputError("encode() takes a sequence of texts, got a single str; wrap it in a list")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        runs: list[list[int]] = [[]]
        for i in order:
            if runs[-1] and (len(runs[-1]) + 1) * len(encodings[i].ids) > MAX_BATCH_TOKENS:
                runs.append([])
            runs[-1].append(i)
        torch = self._torch
        for rows in runs:
            if not rows:
                continue
            width = max(len(encodings[r].ids) for r in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for n, r in enumerate(rows):
                ids[n, : len(encodings[r].ids)] = encodings[r].ids
                mask[n, : len(encodings[r].ids)] = 1
            unknown = ~self._known[ids[mask == 1]]
            if unknown.any():
                raise InvalidInputError(
                    f"token ids {sorted(set(ids[mask == 1][unknown].tolist()))[:5]} are not in the packed base's "
                    "vocabulary: re-run `make gpu-pack` after the data changed"
                )
            with torch.inference_mode():
                t_ids = torch.from_numpy(ids).to(self._device)
                t_mask = torch.from_numpy(mask).to(self._device)
                hidden = self._model(input_ids=t_ids, attention_mask=t_mask).last_hidden_state.float()
                m = t_mask[:, :, None].float()
                pooled = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, dim=1, eps=1e-12)
            out[rows] = pooled.cpu().numpy()
        return out

    def encode_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]], batch_size: int = 32
    ) -> tuple[Vectors, list[Vectors]]:
        raise NotImplementedError("TorchEncoder embeds whole texts and windows only (the evaluation's use)")
