"""The one configuration object of the service, read from `LIGHTGUARD_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Service settings; every field maps to `LIGHTGUARD_<FIELD>` (e.g. `LIGHTGUARD_DATABASE_URL`)."""

    model_config = SettingsConfigDict(env_prefix="LIGHTGUARD_", extra="ignore")

    home: Path = Field(default=REPO_ROOT / "var", description="Folder for the default SQLite file and index artifacts")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default sqlite:///$HOME/lightguard.db")
    data_dir: Path | None = Field(default=None, description="Seed data (taxonomy.toml, safety.jsonl); default data/")
    encoder: Literal["onnx", "hashing"] = Field(default="onnx", description="`hashing` is for tests and smoke runs")
    scoring_config: Path | None = Field(
        default=None, description="JSON of GuardConfig overrides; default data/scoring.json when present"
    )
    models_dir: Path = Field(default=REPO_ROOT / "models", description="Model folders (base, finetuned)")
    model_dir: Path | None = Field(default=None, description="ONNX model folder; default $MODELS_DIR/base")
    threads: int | None = Field(
        default=None, ge=1, description="ONNX Runtime threads of a lone model run and encode lanes; default CPUs"
    )
    encoder_spin: bool = Field(
        default=True,
        description="ONNX Runtime's threads spin between the ops of a model run (never after it): back to back, a "
        "lone request finishes ~1 ms sooner than with false for the same CPU; at 10-50 requests/s they are within "
        "~1-2 ms of CPU and latency (docs/performance.md)",
    )
    onnx_variant: Literal["int8", "fp32"] = "int8"
    admin_key: SecretStr | None = Field(default=None, description="Bootstraps this admin API key at start-up")
    key_cache_ttl_s: float = Field(
        default=1.0,
        ge=0.0,
        le=60.0,
        description="Classify routes check API keys against an in-memory copy this old at most (a revoked key stops"
        " working within it; 0: read the database on every request). Admin routes always read the database",
    )
    log_text: bool = Field(default=False, description="Store raw prompts in the decision log (digests otherwise)")
    decision_log: bool = Field(default=True, description="Record a digest + verdict for every classified text")
    decision_retention_days: float | None = Field(
        default=None,
        gt=0.0,
        description="Delete decision-log rows older than this many days (unset: keep them). At 500 prompts/s the log"
        " grows ~4 GB a day on SQLite",
    )
    decision_retention_rows: int | None = Field(
        default=None, ge=1, description="Keep at most this many decision-log rows, the newest (unset: no limit)"
    )
    decision_retention_batch: int = Field(
        default=2000,
        ge=1,
        le=100_000,
        description="Rows deleted per transaction by retention: each batch holds the database's write lock briefly,"
        " so the decision-log writer and edits go on between batches",
    )
    decision_retention_interval_s: float = Field(
        default=60.0, gt=0.0, le=86_400.0, description="How often retention runs (a background thread per process)"
    )
    max_batch: int = Field(default=256, ge=1)
    max_text_chars: int = Field(default=100_000, ge=1)
    max_examples: int = Field(default=500, ge=1, description="Examples per topic request")
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, description="Request bodies above are refused")
    max_request_cost: int = Field(
        default=1024,
        ge=16,
        description="Most model runs one classify or moderation request may take (a run reads one window of up to 128"
        " tokens, ~400 characters of English; long texts in sentence mode add up to 8 short runs each); a request"
        " above it gets 413 and the advice to split it. 1024: a 100,000-character document (the per-text limit) costs"
        " 250 runs as plain prose and ~400 as technical text with tables and code (200-280 characters per run), so"
        " two or more fit (docs/reliability.md, `python -m benchmarks.serving.fairness --costs`)",
    )
    slice_runs: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Model runs per scheduling step of a large request (large requests take turns step by step, on a"
        " thread of their own beside the micro-batches of small ones; a deadline or a disconnect stops a request"
        " between steps). Requests of at most this many windows (by length) are micro-batched whole",
    )
    request_timeout_s: float = Field(
        default=60.0,
        gt=0.0,
        le=3600.0,
        description="Server-side deadline of a classify or moderation request: work not done by then is dropped and"
        " the answer is 504 (a request may ask for less with `timeout` or the X-Request-Timeout header)",
    )
    rate_limit: str | None = Field(
        default="none",
        description="Default rate limit per API key (and for the anonymous caller when no keys exist), in texts, in"
        " the `limits` notation (`100/second`, `5000/minute;100000/hour`); a key's own limit overrides it. Default"
        " `none` (unlimited): the concurrency limit already bounds what one key holds (counting costs 8 single-prompt"
        " clients about what noise moves, docs/performance.md)",
    )
    max_concurrency: int | None = Field(
        default=16,
        ge=1,
        description="Default limit of classify requests in flight per API key (and for the anonymous caller); a"
        " key's own limit overrides it",
    )
    rate_limit_storage: str = Field(
        default="memory://",
        description="Where rate-limit counters live (a `limits` storage URI): memory:// counts per process (with N"
        " workers or replicas a key gets up to N times its limit); redis://host:6379 shares them (pip install redis)",
    )
    workers: int = Field(default=2, ge=1, description="Threads that run classification")
    search_threads: int = Field(
        default=1,
        ge=1,
        description="FAISS OpenMP threads (ONNX Runtime's: LIGHTGUARD_THREADS)",
    )
    batch_max_texts: int = Field(default=64, ge=1, description="Micro-batch: most texts gathered into one guard call")
    batch_consumers: int = Field(
        default=2,
        ge=1,
        le=8,
        description="Micro-batches run at once: with 2, one batch's planning and deciding overlap another's model runs"
        " (8 clients on 2 AVX2 cores: +5 % and +21 % prompts/s in two A/B runs, 7 of 7 rounds, docs/performance.md);"
        " 1 runs one batch at a time as before",
    )
    batch_wait_ms: float = Field(
        default=2.0,
        ge=0.0,
        le=50.0,
        description="Micro-batch: longest extra wait for more requests, only under concurrency (a sequential client"
        " never waits; the wait ends early once as many requests are in as recent batches held). 2 ms: 8 concurrent"
        " single-prompt clients got 13-25 % more prompts/s than with 0 on two machines, and 4 ms no more"
        " (docs/performance.md)",
    )
    follow_interval_s: float = Field(
        default=0.5,
        ge=0.0,
        le=60.0,
        description="Poll the database this often for index versions committed by other processes (other workers,"
        " the CLI) and catch up; 0 turns following off (a single process that alone edits its database)",
    )
    embedding_cache: str | None = Field(
        default=None,
        description="SQLite file of exemplar and topic-example vectors by (model, text), shared by every home and"
        " process of this checkout: a new empty home, or a rebuild that changes no model, embeds only texts never"
        " embedded before (classify traffic never goes in). Unset: .cache/embeddings.sqlite3 in the checkout (outside"
        " var/, so `rm -rf var` keeps it); `off`: no cache. Keep it on a local disk (SQLite WAL), not NFS",
    )
    embedding_cache_max_entries: int = Field(
        default=200_000,
        ge=1000,
        description="Vectors the embedding cache keeps, least recently used evicted first (1.6 KB each at dim 384:"
        " 200,000 ~ 330 MB, the ~30k seed exemplars of six models)",
    )
    seed_vectors: str | None = Field(
        default=None,
        description="Seed-vector pack (a manifest JSON with a .bin beside it): vectors of the seed index's texts"
        " that a build takes for texts the embedding cache lacks, when the pack was made under the running"
        " encoder (else it is ignored, with one log line), so a fresh clone embeds none of the ~32k seed texts;"
        " `make seed-vectors` writes it. Unset: seed-vectors.json in the data folder; `off`: none",
    )
    artifact_keep: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Keep this many full builds' index artifacts in the database (older ones are pruned after each"
        " build): a replica with an empty home loads the newest intact one instead of re-embedding (docs/deploy.md)",
    )
    auto_migrate: bool = Field(default=True, description="Run `alembic upgrade head` at start-up")
    seed: bool = Field(default=True, description="Seed the built-in taxonomy into an empty database")
    operating_point: Literal["strict", "balanced", "permissive"] | None = Field(
        default=None,
        description="Built-in threshold by name, from operating_points.json in the data folder (chosen on dev,"
        " docs/results.md says what each costs): strict flags more, permissive less; unset: scoring.json's",
    )

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'lightguard.db'}"

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @property
    def resolved_embedding_cache(self) -> Path | None:
        """The embedding cache's file, None when LIGHTGUARD_EMBEDDING_CACHE is `off`."""
        if self.embedding_cache is None or not self.embedding_cache.strip():
            return REPO_ROOT / ".cache" / "embeddings.sqlite3"
        if self.embedding_cache.strip().lower() == "off":
            return None
        return Path(self.embedding_cache).expanduser()

    @property
    def resolved_seed_vectors(self) -> Path | None:
        """The seed-vector pack's manifest, None when LIGHTGUARD_SEED_VECTORS is `off`."""
        if self.seed_vectors is None or not self.seed_vectors.strip():
            return self.resolved_data_dir / "seed-vectors.json"
        if self.seed_vectors.strip().lower() == "off":
            return None
        return Path(self.seed_vectors).expanduser()

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir if self.data_dir is not None else REPO_ROOT / "data"

    @property
    def resolved_scoring_config(self) -> Path | None:
        """Tuned scoring overrides: LIGHTGUARD_SCORING_CONFIG, else `scoring.json` in the data folder if present."""
        if self.scoring_config is not None:
            return self.scoring_config
        default = self.resolved_data_dir / "scoring.json"
        return default if default.is_file() else None

    @property
    def resolved_model_dir(self) -> Path:
        # The base encoder serves by default: the fine-tuned one did not beat it out of source with the production
        # scoring (docs/ablation.md), and data/scoring.json was tuned on the base. Select another with MODEL_DIR.
        if self.model_dir is not None:
            return self.model_dir
        return self.models_dir / "base"
