"""What travels to the lent GPU machine for the fine-tune candidates (benchmarks/training/gpu_run.py), and back.

The machine has torch, transformers and onnxruntime but neither the base model package nor faiss, datasets or this
project's sentence-transformers version, and at most 64 MiB travel per call, the checkout included (~30 MB once the
24.5 MB seed-vector pack, which the device never reads, is moved aside: NOT_NEEDED_THERE). So:

- the base weights go as fp16 (the fine-tune starts from them; cosine to fp32 vectors ~1 - 1e-6), with only the
  word-embedding rows of tokens that the dataset's texts and windows use (~23.5k of 30.5k), byte-shuffled and
  xz-compressed: ~34 MB instead of 91 MB;
- datasets, dill, multiprocess and sentence-transformers go as wheels (~1.7 MB), at this checkout's versions;
- faiss stays behind: benchmarks/training/flat_faiss.py stands in for the exact search the evaluation uses.

Coming back, a model is its fp16 weights (the same kept rows) in parts of at most 15 MiB; `import_model` puts the
real base's rows back for the tokens training never saw and exports ONNX here.
    .venv/bin/python -m benchmarks.training.gpu_pack      # = make gpu-pack: writes .gpu/ and checks the size
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import lzma
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from benchmarks.layout import DATA_DIR, REPO

PACK_DIR = REPO / ".gpu"
BASE_PACK = "base"
WEIGHTS_FILE = "weights.npz.xz"
WHEELS = ("datasets", "dill", "multiprocess", "sentence-transformers")
TRAVEL_LIMIT = 64 * 2**20
TRAVEL_MARGIN = 512 * 1024  # room for a few more tracked files before the next call
PART_BYTES = 15 * 2**20  # under the 16 MiB a returned file may hold
EMBEDDINGS = "embeddings.word_embeddings.weight"
ST_FILES = (
    "config.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "1_Pooling",
    "2_Normalize",
)


def used_token_ids(texts: Iterable[str], st_dir: Path, max_tokens: int = 256) -> list[int]:
    """Token ids of every text as indexed (normalised) and of every window the evaluation cuts from it, plus the
    special tokens: all the word-embedding rows training and evaluation can read."""
    from tokenizers import Tokenizer

    from benchmarks.training.torch_encoder import TorchEncoder
    from index import GuardConfig, normalize_text, split_windows

    tokenizer = Tokenizer.from_file(str(st_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=max_tokens)
    spans = TorchEncoder.__new__(TorchEncoder)  # only its tokenizer half: token_spans and max_tokens
    spans._span_tokenizer = Tokenizer.from_file(str(st_dir / "tokenizer.json"))
    spans._span_tokenizer.no_padding()
    spans._span_tokenizer.no_truncation()
    spans._max_tokens = max_tokens
    config = GuardConfig()
    unique = list(dict.fromkeys(normalize_text(t) or t for t in texts))
    pieces = list(unique)
    for text in unique:
        windows = split_windows(spans, text, config.window_overlap, config.window_tokens)
        if len(windows) > 1:
            pieces += windows
    used: set[int] = set()
    for start in range(0, len(pieces), 4096):
        for encoding in tokenizer.encode_batch(pieces[start : start + 4096]):
            used.update(encoding.ids)
    for token in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"):
        token_id = tokenizer.token_to_id(token)
        if token_id is not None:
            used.add(int(token_id))
    return sorted(used)


def pack_weights(tensors: dict[str, np.ndarray], kept: Sequence[int]) -> bytes:
    """fp16 tensors (word embeddings: the `kept` rows only) as one npz; each array byte-shuffled (high bytes, then
    low bytes) so that xz finds the exponents' redundancy."""
    arrays: dict[str, np.ndarray] = {"__kept__": np.asarray(kept, dtype=np.int32)}
    for name, value in tensors.items():
        half = np.asarray(value, dtype=np.float16)
        if name == EMBEDDINGS:
            half = half[np.asarray(kept)]
        arrays[name] = half.reshape(-1).view(np.uint8).reshape(-1, 2).T.copy()
        arrays[f"__shape__{name}"] = np.asarray(half.shape, dtype=np.int64)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def unpack_weights(blob: bytes, vocab_size: int | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Inverse of `pack_weights`: fp32 tensors and the kept ids; with `vocab_size`, the word embeddings are full
    size with zero rows for ids not kept (else only the kept rows)."""
    data = np.load(io.BytesIO(blob))
    kept = data["__kept__"].astype(np.int64)
    out: dict[str, np.ndarray] = {}
    for name in data.files:
        if name.startswith("__"):
            continue
        shape = tuple(int(d) for d in data[f"__shape__{name}"])
        value = data[name].T.copy().reshape(-1).view(np.float16).reshape(shape).astype(np.float32)
        if name == EMBEDDINGS and vocab_size is not None:
            full = np.zeros((vocab_size, shape[1]), dtype=np.float32)
            full[kept] = value
            value = full
        out[name] = value
    return out, kept


def write_parts(blob: bytes, out_dir: Path, stem: str) -> list[Path]:
    """`blob` in files `stem.partNN` of at most PART_BYTES (what a device call may return per file)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, start in enumerate(range(0, len(blob), PART_BYTES)):
        path = out_dir / f"{stem}.part{n:02d}"
        path.write_bytes(blob[start : start + PART_BYTES])
        paths.append(path)
    return paths


def read_parts(folder: Path, stem: str) -> bytes:
    parts = sorted(folder.glob(f"{stem}.part*"))
    if not parts:
        raise FileNotFoundError(f"no {stem}.part* files in {folder}")
    return b"".join(p.read_bytes() for p in parts)


def pack_base(st_dir: Path, texts: Iterable[str], out_dir: Path) -> Path:
    """The base model's sentence-transformers files plus WEIGHTS_FILE (see the module docstring) under out_dir/base."""
    from safetensors.numpy import load_file

    target = out_dir / BASE_PACK
    shutil.rmtree(target, ignore_errors=True)
    copy_st_files(st_dir, target)
    kept = used_token_ids(texts, st_dir)
    blob = pack_weights(load_file(str(st_dir / "model.safetensors")), kept)
    (target / WEIGHTS_FILE).write_bytes(lzma.compress(blob, preset=6))
    return target


def copy_st_files(st_dir: Path, target: Path) -> None:
    """A sentence-transformers directory's configuration and tokenizer files (ST_FILES), not its weights."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ST_FILES:
        source = st_dir / name
        if source.is_dir():
            shutil.copytree(source, target / name, dirs_exist_ok=True)
        elif source.is_file():
            shutil.copy2(source, target / name)


def unpack_base(pack_dir: Path, st_out: Path) -> np.ndarray:
    """Rebuild a loadable sentence-transformers directory from `pack_base` output; returns the kept token ids."""
    from safetensors.numpy import save_file

    shutil.rmtree(st_out, ignore_errors=True)
    shutil.copytree(pack_dir, st_out, ignore=shutil.ignore_patterns(WEIGHTS_FILE))
    vocab_size = int(json.loads((pack_dir / "config.json").read_text())["vocab_size"])
    tensors, kept = unpack_weights(lzma.decompress((pack_dir / WEIGHTS_FILE).read_bytes()), vocab_size)
    save_file(tensors, str(st_out / "model.safetensors"))
    return kept


def download_wheels(out_dir: Path) -> list[Path]:
    """This checkout's versions of WHEELS, for the device's Python 3.12 on x86-64 (pip download, no dependencies)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.whl"):
        old.unlink()
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in WHEELS]
    platforms = [
        arg
        for tag in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")
        for arg in ("--platform", tag)
    ]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
               "3.12", "--implementation", "cp", *platforms, "-d", str(out_dir), *pins]  # fmt: skip
    subprocess.run(command, check=True)
    return sorted(out_dir.glob("*.whl"))


NOT_NEEDED_THERE = ("data/seed-vectors.bin", "data/seed-vectors.json")
"""Tracked files the device run never reads (the seed-vector pack, ~25 MB, only speeds up a fresh home's start):
moved out of the checkout for the call, they do not travel."""


def travel_bytes(extra: Path) -> int:
    """Bytes a device call sends: tracked and untracked-not-ignored files of the checkout, plus `extra`."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.split(b"\0")  # fmt: skip
    total = sum((REPO / name.decode()).stat().st_size for name in listed if name and (REPO / name.decode()).is_file())
    return total + sum(p.stat().st_size for p in extra.rglob("*") if p.is_file())


def main() -> None:
    from index import base_model_dir, load_rows

    rows = load_rows(DATA_DIR / "safety.jsonl")
    print(f"packing the base model for {len(rows)} rows into {PACK_DIR} (tokenising texts and windows, ~2 min)")
    base = pack_base(base_model_dir(), [r.text for r in rows], PACK_DIR)
    wheels = download_wheels(PACK_DIR / "wheels")
    size = travel_bytes(PACK_DIR)
    print(f"{base / WEIGHTS_FILE}: {(base / WEIGHTS_FILE).stat().st_size / 1e6:.1f} MB; wheels: "
          f"{', '.join(w.name for w in wheels)}")  # fmt: skip
    print(f"a device call carrying .gpu sends {size / 2**20:.1f} MiB of {TRAVEL_LIMIT / 2**20:.0f} MiB")
    present = [name for name in NOT_NEEDED_THERE if (REPO / name).is_file()]
    if size > TRAVEL_LIMIT - TRAVEL_MARGIN:
        aside = (
            f"; move what the device does not read out of the checkout for the call: mkdir -p /tmp/aside && mv "
            f"{' '.join(present)} /tmp/aside/ (after it: git checkout -- {' '.join(present)})"
            if present
            else ""
        )
        sys.exit(f"too large to travel: {size / 2**20:.1f} MiB (limit {TRAVEL_LIMIT / 2**20:.0f} MiB less a margin)"
                 f"{aside}")  # fmt: skip


if __name__ == "__main__":
    main()
