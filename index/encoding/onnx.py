"""Serving encoder: ONNX Runtime + `tokenizers` reproducing sentence-transformers mean pooling, without torch."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray
from tokenizers import Encoding, Tokenizer

from index.encoding.models import ONNX_FILES, TOKENIZER_FILE, ModelManifest, Variant, verify_model_dir
from index.errors import InvalidInputError, ModelIntegrityError
from index.types import Vectors

# Bumped when this module's arithmetic changes a vector for the same graph and tokenizer (pooling, padding, session
# options): vectors cached by model (index/encoding/cache.py) are then computed again.
ARITHMETIC_REVISION = 1
MAX_BATCH_TOKENS = 256  # rows x padded width per ONNX Runtime call (see OnnxEncoder.encode)
SPANNED_TEXTS = 1024  # texts whose `token_spans` encoding `encode` may take instead of tokenising them again
# ONNX Runtime (1.32, CPU) runs its fused SkipLayerNormalization ~3x slower than the Add + LayerNormalization it
# replaces on one thread (77 vs 26 us for 32 tokens x 384), 20 % of a short prompt's run. The export leaves the
# pair unfused (index/encoding/export.py, format 3) and sessions do not re-fuse it: a one-thread run of a ~30-token
# prompt takes 3.2 instead of 3.9 ms (two threads: within run-to-run noise either way). Both sessions must run the
# same graph: the two graphs differ in float rounding, which dynamic int8 quantisation amplifies (cosine down to
# 0.992), and a text's vector must not depend on whether it ran alone or in a batch.
_DISABLED_OPTIMIZERS = ["SkipLayerNormFusion"]


def default_threads() -> int:
    """The number of CPUs."""
    return os.cpu_count() or 1


class OnnxEncoder:
    """Encoder protocol on an exported model directory (see index/encoding/export.py); checksums are verified at load.

    Vectors equal sentence-transformers' (truncate at `max_tokens`, mean pooling over the attention mask, L2
    normalisation) up to float error for fp32 and quantisation error for int8.
    """

    def __init__(
        self, model_dir: Path, variant: Variant = "int8", threads: int | None = None, spin: bool = True
    ) -> None:
        """Load and verify a model directory.

        Args:
            model_dir: directory holding manifest.json, the ONNX graphs and tokenizer.json.
            variant: "int8" (faster, cosine to fp32 ~0.99) or "fp32".
            threads: threads of a lone model run, and lanes for several runs; default the CPU count (the service
                passes LIGHTGUARD_THREADS).
            spin: ONNX Runtime's intra-op threads spin between the ops of a run (its default) and stop when the
                run ends (`session.force_spinning_stop`); False makes them sleep between ops too, which costs a
                back-to-back request ~1 ms of p50 (docs/performance.md). Vectors are the same either way.

        Raises:
            ModelNotFoundError: the directory or an artifact is missing.
            ModelIntegrityError: an artifact does not match its manifest checksum, or the graph is not the expected one.
        """
        model_dir = Path(model_dir)
        self._manifest: ModelManifest = verify_model_dir(model_dir, variant)
        if self._manifest.pooling != "mean" or not self._manifest.normalize:
            raise ModelIntegrityError(
                f"{model_dir}: pooling={self._manifest.pooling!r} normalize={self._manifest.normalize} is not "
                "supported (only mean pooling + L2 normalisation); re-export the model"
            )
        onnx_name = ONNX_FILES[variant]
        self._variant: Variant = variant
        self._model_id = f"{self._manifest.name}:{variant}:{self._manifest.files[onnx_name][:12]}"

        tokenizer_path = str(model_dir / TOKENIZER_FILE)
        # Padding is done per sorted batch in numpy; truncation matches sentence-transformers' max_seq_length.
        self._tokenizer = Tokenizer.from_file(tokenizer_path)
        self._pad_id = _pad_id(self._tokenizer)
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=self._manifest.max_tokens)
        # token_spans must see the whole text: windowing relies on it to cover what truncation would drop.
        self._span_tokenizer = Tokenizer.from_file(tokenizer_path)
        self._span_tokenizer.no_padding()
        self._span_tokenizer.no_truncation()
        # `token_spans`' encodings of texts that fit the model, by text. Classify tokenises a text for its plan and
        # then encodes its windows, and a short prompt's one window is the text itself: `_encode` takes (and drops)
        # its encoding from here instead of tokenising it a second time (~0.08 ms of CPU per short prompt). Without
        # truncation the encoding is the one the truncating tokenizer makes for a text of at most `max_tokens`
        # tokens. Bounded (cleared when full); single dict operations, atomic under the GIL, so threads share it.
        self._spanned: dict[str, Encoding] = {}

        self._threads = default_threads() if threads is None else max(1, threads)
        self._session = _session(model_dir / onnx_name, self._threads, spin=spin)
        # Several runs (a batch of texts, a long text's windows) go to `threads` lanes: worker threads sharing one
        # single-threaded session (ONNX Runtime runs are thread-safe; a 1-thread run computes on its caller). A
        # short text's run barely uses a second thread, so two runs side by side encode more texts per second than
        # consecutive 2-thread runs (+14 % to +22 % on 64 short prompts, docs/performance.md). A lone run keeps all
        # threads (2.3 vs 3.0 ms). The int8 kernels give bit-identical outputs at any thread count (tested).
        self._lane_session = _session(model_dir / onnx_name, 1) if self._threads > 1 else self._session
        self._lanes = (
            ThreadPoolExecutor(self._threads, thread_name_prefix="lightguard-encode") if self._threads > 1 else None
        )
        self._inputs = {node.name for node in self._session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - self._inputs
        if missing:
            raise ModelIntegrityError(f"{model_dir / onnx_name} lacks inputs {sorted(missing)}; re-export the model")
        self._output = self._session.get_outputs()[0].name

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dim(self) -> int:
        return self._manifest.dim

    @property
    def max_tokens(self) -> int:
        return self._manifest.max_tokens

    @property
    def variant(self) -> Variant:
        return self._variant

    @property
    def manifest(self) -> ModelManifest:
        return self._manifest

    @property
    def arithmetic(self) -> str:
        """What else a vector depends on besides the manifest's files: this module's arithmetic and the ONNX
        Runtime build whose kernels compute it (int8 results differ between versions and instruction sets)."""
        return f"onnx.py r{ARITHMETIC_REVISION}, onnxruntime {ort.__version__}"

    def token_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        if isinstance(texts, str):
            raise InvalidInputError("token_spans() takes a sequence of texts, got a single str; wrap it in a list")
        # one batch call: 64 short prompts tokenise in about half the time of one call each
        encodings = self._span_tokenizer.encode_batch(list(texts))
        spanned = self._spanned
        if len(spanned) + len(encodings) > SPANNED_TEXTS:
            spanned.clear()
        if len(encodings) <= SPANNED_TEXTS:
            for text, encoding in zip(texts, encodings, strict=True):
                if len(encoding.ids) <= self.max_tokens:
                    spanned[text] = encoding
        return [
            [span for span, special in zip(encoding.offsets, encoding.special_tokens_mask, strict=True) if not special]
            for encoding in encodings
        ]

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> Vectors:
        return self._encode(texts, None, batch_size)[0]

    def encode_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]], batch_size: int = 32
    ) -> tuple[Vectors, list[Vectors]]:
        if len(spans) != len(texts):
            raise InvalidInputError(f"got {len(spans)} span lists for {len(texts)} texts")
        return self._encode(texts, spans, batch_size)

    def _encode(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]] | None, batch_size: int
    ) -> tuple[Vectors, list[Vectors]]:
        if isinstance(texts, str):
            raise InvalidInputError("encode() takes a sequence of texts, got a single str; wrap it in a list")
        if batch_size < 1:
            raise InvalidInputError(f"batch_size must be at least 1, got {batch_size}")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        parts = [np.zeros((len(s), self.dim), dtype=np.float32) for s in spans] if spans is not None else []
        if not texts:
            return out, parts
        if not all(isinstance(t, str) for t in texts):
            raise InvalidInputError("every text must be a str")
        encodings = self._tokenize(texts)
        # int8 runs one text at a time: dynamic quantisation takes one activation scale per run, so in a batch a
        # text's vector depends on its batch partners (cosine to itself alone down to 0.95 for tiny texts; a
        # buried sentence's window changed category) — a verdict must not depend on concurrent traffic. On
        # 2 cores that costs ~20 % of the best batched rate (~460 vs ~580 short prompts/s).
        limit = 1 if self._variant == "int8" else batch_size
        # fp32 batches are sorted by length, so each pads little, and end before MAX_BATCH_TOKENS (rows x padded
        # width): large batches' activations fall out of cache (a batch of 32 ~30-token prompts ran at half the
        # rate of batches of <= 256 tokens). Rows are written back to their original positions.
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        runs: list[list[int]] = [[]]
        for i in order:
            rows = runs[-1]
            if rows and (len(rows) == limit or (len(rows) + 1) * len(encodings[i].ids) > MAX_BATCH_TOKENS):
                runs.append(rows := [])
            rows.append(i)

        def run(rows: list[int], session: ort.InferenceSession) -> None:
            hidden, mask = self._run([encodings[r] for r in rows], session)
            out[rows] = _mean_pool(hidden, mask)
            if spans is not None:
                for n, r in enumerate(rows):
                    if spans[r]:
                        parts[r] = _pool_spans(hidden[n], encodings[r], spans[r])

        if self._lanes is None or len(runs) == 1:
            for rows in runs:
                run(rows, self._session)
        else:
            for done in [self._lanes.submit(run, rows, self._lane_session) for rows in runs]:
                done.result()
        return out, parts

    def _tokenize(self, texts: Sequence[str]) -> list[Encoding]:
        """The texts' encodings (truncated at `max_tokens`): from `token_spans` where it just made them, the rest in
        one tokenizer call."""
        spanned = self._spanned
        found = [spanned.pop(text, None) for text in texts]
        todo = [text for text, encoding in zip(texts, found, strict=True) if encoding is None]
        fresh = iter(self._tokenizer.encode_batch(todo) if todo else [])
        return [next(fresh) if encoding is None else encoding for encoding in found]

    def _run(
        self, batch: list[Encoding], session: ort.InferenceSession | None = None
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Token outputs (rows, width, dim) of a padded batch and its attention mask (rows, width, 1)."""
        width = max(len(e.ids) for e in batch)
        input_ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
        attention = np.zeros((len(batch), width), dtype=np.int64)
        type_ids = np.zeros((len(batch), width), dtype=np.int64)
        for row, enc in enumerate(batch):
            n = len(enc.ids)
            input_ids[row, :n] = enc.ids
            attention[row, :n] = 1
            type_ids[row, :n] = enc.type_ids
        feeds = {"input_ids": input_ids, "attention_mask": attention}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = type_ids
        hidden = np.asarray((session or self._session).run([self._output], feeds)[0], dtype=np.float32)
        return hidden, attention[:, :, None].astype(np.float32)


def _session(path: Path, threads: int, profile_prefix: str | None = None, spin: bool = True) -> ort.InferenceSession:
    """The serving session; `profile_prefix` turns on ONNX Runtime's profiler (docs/performance.md); `spin`: see
    `OnnxEncoder`."""
    options = ort.SessionOptions()
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    # Spin inside a run (between its ops), never after it: without this the threads spin on after the last run, and
    # at 10-50 requests/s a lone request cost 3x its CPU (27-43 ms a request instead of 10-13); back to back and under
    # 8 clients it is a tie with spinning on after runs (docs/performance.md, twentieth session).
    options.add_session_config_entry("session.force_spinning_stop", "1" if spin else "0")
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(
        str(path),
        sess_options=options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=_DISABLED_OPTIMIZERS,
    )


def _normalise(pooled: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    out: NDArray[np.float32] = (pooled / norms).astype(np.float32, copy=False)
    return out


def _mean_pool(hidden: NDArray[np.float32], mask: NDArray[np.float32]) -> NDArray[np.float32]:
    # Same arithmetic as sentence-transformers: masked mean (count clamped at 1e-9), then L2 norm (eps 1e-12).
    pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
    return _normalise(pooled)


def _pool_spans(
    hidden: NDArray[np.float32], encoding: Encoding, spans: Sequence[tuple[int, int]]
) -> NDArray[np.float32]:
    """Mean of the (non-special) token outputs whose characters lie inside each span; a span without one is zero."""
    tokens = [
        (i, start, end)
        for i, ((start, end), special) in enumerate(zip(encoding.offsets, encoding.special_tokens_mask, strict=True))
        if not special
    ]
    pooled = np.zeros((len(spans), hidden.shape[-1]), dtype=np.float32)
    for row, (a, b) in enumerate(spans):
        inside = [i for i, start, end in tokens if start >= a and end <= b]
        if inside:
            pooled[row] = hidden[inside].mean(axis=0)
    return _normalise(pooled)


def _pad_id(tokenizer: Tokenizer) -> int:
    padding = tokenizer.padding
    if padding is not None and isinstance(padding.get("pad_id"), int):
        return int(padding["pad_id"])
    for token in ("[PAD]", "<pad>"):
        token_id = tokenizer.token_to_id(token)
        if token_id is not None:
            return int(token_id)
    # Padded positions are masked out of attention and pooling, so any id is correct; 0 is the BERT convention.
    return 0
