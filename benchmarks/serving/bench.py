"""Latency / throughput / memory benchmark: real uvicorn server + separate load process + in-process micro-benchmarks.

    .venv/bin/python -m benchmarks.serving.bench                      # everything except the 1M-vector case
    .venv/bin/python -m benchmarks.serving.bench --scale 100000,1000000 --nprobe 16,32
    .venv/bin/python -m benchmarks.serving.bench --only micro,scale   # skip the server / torch parts
    .venv/bin/python -m benchmarks.serving.bench --only server --stub-encoder  # the serving path without the model

The server section also times the encoder alone (same model, threads and prompts, in-process) right before and
after the 8-client phase and prints the end-to-end rate as a share of it (issue 19: >= 80 %), beside the CPU model
and its SIMD flags. LIGHTGUARD_HOME (default var/bench-home) must hold, or will get, the built index of the shipped
exemplars: the first run embeds them all (minutes). Prints one table and writes reports/bench.json (and
reports/bench.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmarks.layout import REPO, REPORTS_DIR, VAR_DIR
from benchmarks.machine import machine, proc_stats
from benchmarks.samples import long_prompt, short_prompts
from benchmarks.serving.load import Mode, run_load
from benchmarks.serving.server import free_port, http_get, serve_cmd, start_server, stop_server
from benchmarks.serving.topic_add import LOAD_CLIENTS, TopicAddTimes, measure_topic_adds
from benchmarks.tables import markdown_table

if TYPE_CHECKING:
    from index import Encoder

Row = dict[str, Any]


# ---------------------------------------------------------------------------- helpers
def pct(samples_s: list[float]) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1000
    return {f"p{q}": round(float(np.percentile(ms, q)), 2) for q in (50, 90, 99)}


def timed(fn: Callable[[], object], repeat: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


# ---------------------------------------------------------------------------- in-process micro-benchmarks
def micro(rows: list[Row], report: dict[str, Any], home: Path) -> None:
    from index import OnnxEncoder
    from service.context import open_guard
    from service.serving.runtime import configure_threads
    from service.settings import Settings

    configure_threads(1)
    settings = Settings(home=home)
    t = time.perf_counter()
    guard = open_guard(settings)
    report["guard_open_s"] = round(time.perf_counter() - t, 2)
    enc = guard.encoder
    assert isinstance(enc, OnnxEncoder)
    prompts = short_prompts(256)
    n = len(guard)
    report["exemplars"] = n

    def add(case: str, samples: list[float], per_call: int = 1, note: str = "") -> None:
        total = sum(samples)
        rows.append(
            {"section": "in-process", "case": case, **pct(samples), "per_s": round(per_call * len(samples) / total, 1)}
            | ({"note": note} if note else {})
        )

    it = iter(range(10**9))
    add("encode 1 short prompt (ONNX int8)", timed(lambda: enc.encode([prompts[next(it) % 256]]), 300))
    add("encode batch 16", timed(lambda: enc.encode(prompts[:16], 16), 40), 16)
    # lanes (runs side by side, index/encoding/onnx.py) against the same runs one after another, interleaved so that
    # a drift in the machine's load hits both
    lanes, on, off = enc._lanes, [], []
    for _ in range(12):
        on += timed(lambda: enc.encode(prompts[:64], 64), 1, warmup=0)
        enc._lanes = None
        off += timed(lambda: enc.encode(prompts[:64], 64), 1, warmup=0)
        enc._lanes = lanes
    add("encode batch 64 (lanes)", on, 64)
    add("encode batch 64, one run at a time (no lanes)", off, 64)
    vecs = enc.encode(prompts, 64)
    from index import FaissStore

    store = guard.store
    assert isinstance(store, FaissStore), "the benchmark reads FAISS's own figures"
    k = guard.config.k
    for nq in (1, 16, 64):
        add(
            f"search {store.backend} {n} x {nq} queries (k={k})",
            timed(partial(store.search, vecs[:nq], k), 100),
            nq,
        )
    flat = FaissStore(store.dim, store.model_id)  # exact search over the same vectors, for comparison
    flat.add(*store.items())
    add(f"search flat (exact) {n} x 1 query (k={k})", timed(lambda: flat.search(vecs[:1], k), 100))
    if store.backend != "flat":
        ids_exact = flat.search(vecs, k)[1]
        ids_ann = store.search(vecs, k)[1]
        report["shipped_ann_recall_at_k"] = round(_recall(ids_ann, ids_exact), 4)
    configure_threads(1)
    add("score 1 vector (search + kNN/centroid/head)", timed(lambda: guard.score_vectors(vecs[:1]), 200))
    add("score 64 vectors", timed(lambda: guard.score_vectors(vecs[:64]), 20), 64)
    add("classify 1 short prompt (end to end, no HTTP)", timed(lambda: guard.classify([prompts[next(it) % 256]]), 300))
    add("classify batch of 64", timed(lambda: guard.classify(prompts[:64]), 10), 64)
    for words in (500, 1000, 2000):
        text = long_prompt(words)
        windows = guard.classify([text])[0].windows
        add(
            f"classify {words}-word prompt",
            timed(partial(guard.classify, [text]), 8, 1),
            1,
            f"{windows} windows",
        )
    data = store.memory_bytes()
    index_dir = settings.index_dir
    disk = sum(p.stat().st_size for p in index_dir.iterdir()) if index_dir.is_dir() else 0
    report["memory"] = {
        "index_bytes_per_exemplar": round(data / n, 1),
        "artifact_disk_bytes_per_exemplar": round(disk / n, 1),
        "artifact_disk_mb": round(disk / 2**20, 1),
        "vector_bytes": enc.dim * 4,
    }
    report["real_vectors"] = store.items()[1]


# ---------------------------------------------------------------------------- the encoder alone (issue 19)
ENCODER_PROMPTS = 256
ENCODER_PASSES = 5  # ~2 s at 600 prompts/s
TARGET_RATIO = 0.8  # issue 19: 8 single-prompt clients end to end >= 80 % of the encoder alone
TARGET_P99_MS = 25.0  # issue 19: HTTP p99 under those 8 clients


def encoder_only_rate(encoder: Encoder, batch: int = LOAD_CLIENTS, passes: int = ENCODER_PASSES) -> float:
    """Prompts/s of the serving encoder alone (the service's `build_encoder`: same model, threads and lanes) on the
    load generator's prompts in batches of `batch`, the micro-batches N single-prompt clients make: the ceiling of
    the server's rate, without HTTP, scheduling, planning, search or scoring."""
    prompts = short_prompts(ENCODER_PROMPTS)
    batches = [prompts[i : i + batch] for i in range(0, len(prompts), batch)]
    encoder.encode(batches[0])  # warm-up: the first runs allocate
    t = time.perf_counter()
    for _ in range(passes):
        for texts in batches:
            encoder.encode(texts)
    return passes * len(prompts) / (time.perf_counter() - t)


def ratio_lines(report: dict[str, Any]) -> list[str]:
    """The machine, and the end-to-end rate against the encoder's alone, as printed under the table."""
    m = report["machine"]
    lines = [
        f"CPU: {m['cpu']}, {m['cores']} cores, int8: {m['int8_isa']}, flags: {' '.join(m['simd_flags']) or '-'},"
        f" load average {' '.join(str(x) for x in m['loadavg'])} (start) / "
        f"{' '.join(str(x) for x in m.get('loadavg_end', []))} (end)"
    ]
    r = report.get("end_to_end_vs_encoder")
    if r is not None:
        lines.append(
            f"{r['clients']} clients end to end: {r['end_to_end_per_s']} prompts/s = {r['ratio']:.0%} of the encoder"
            f" alone ({r['encoder_only_per_s']} prompts/s; target >= {r['target_ratio']:.0%}); HTTP p99"
            f" {r['p99_ms']} ms (target <= {r['target_p99_ms']:g} ms)"
        )
    return lines


# ---------------------------------------------------------------------------- torch comparison (own process)
def torch_worker() -> None:
    t = time.perf_counter()
    from sentence_transformers import SentenceTransformer

    from index import base_model_dir

    model = SentenceTransformer(str(base_model_dir()), device="cpu")
    load = time.perf_counter() - t
    prompts = short_prompts(256)
    it = iter(range(10**9))
    one = timed(lambda: model.encode([prompts[next(it) % 256]]), 100)
    b16 = timed(lambda: model.encode(prompts[:16], batch_size=16), 15)
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"load_s": load, "one": one, "b16": b16, "peak_rss_mb": usage}))


def torch_compare(rows: list[Row], report: dict[str, Any]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.serving.bench", "--torch-worker"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
    )
    if done.returncode:
        report["torch_error"] = done.stderr[-1000:]
        return
    res = json.loads(done.stdout.strip().splitlines()[-1])
    rows.append({"section": "torch", "case": "encode 1 short prompt (sentence-transformers)", **pct(res["one"])})
    rows.append(
        {
            "section": "torch",
            "case": "encode batch 16 (sentence-transformers)",
            **pct(res["b16"]),
            "per_s": round(16 * len(res["b16"]) / sum(res["b16"]), 1),
        }
    )
    report["torch"] = {"load_s": round(res["load_s"], 2), "peak_rss_mb": round(res["peak_rss_mb"], 1)}


def stub_serve(port: int) -> None:
    """`lightguard serve` with the model run replaced by random token outputs of the right shape: what the serving
    path costs besides the model (HTTP, validation, batching, tokenising, search, scoring, the decision log).
    Verdicts are meaningless; for `--stub-encoder` only."""
    import index.encoding.onnx as onnx_encoder
    from service.cli.main import app

    def fake_run(self: Any, batch: list[Any], session: Any = None) -> tuple[np.ndarray, np.ndarray]:
        width = max(len(e.ids) for e in batch)
        hidden = np.random.default_rng(width).standard_normal((len(batch), width, self.dim)).astype(np.float32)
        return hidden, np.ones((len(batch), width, 1), dtype=np.float32)

    onnx_encoder.OnnxEncoder._run = fake_run  # type: ignore[method-assign]
    sys.argv = ["lightguard", "serve", "--port", str(port), "--log-level", "warning"]
    app()


def server(rows: list[Row], report: dict[str, Any], home: Path, n_seq: int, stub: bool = False) -> None:
    port = free_port()
    env = os.environ | {"LIGHTGUARD_HOME": str(home)}
    cmd = serve_cmd(port)
    if stub:
        cmd = [sys.executable, "-m", "benchmarks.serving.bench", "--stub-serve", str(port)]
    t0 = time.perf_counter()
    proc = start_server(cmd, port, env)
    try:
        report["cold_start_to_ready_s"] = round(time.perf_counter() - t0, 2)
        report["server_after_start"] = proc_stats(proc.pid)

        def phase(case: str, mode: Mode, n: int, clients: int) -> Row:
            before = proc_stats(proc.pid)
            res = run_load(port, mode, n, clients)
            after = proc_stats(proc.pid)
            cpu_ms = (after["cpu_s"] - before["cpu_s"]) * 1000 / max(1, res["prompts"])
            rows.append(
                {
                    "section": "http",
                    "case": case,
                    **pct(res["samples"]),
                    "per_s": round(res["prompts"] / res["wall"], 1),
                    "rss_mb": round(after["rss_mb"], 1),
                    "server_cpu_ms_per_prompt": round(cpu_ms, 2),
                    "client_cpu_ms_per_prompt": round(res["client_cpu_s"] * 1000 / max(1, res["prompts"]), 2),
                }
            )
            return rows[-1]

        phase("POST /v1/classify 1 prompt, sequential client", "single", n_seq, 1)
        phase("POST /v1/classify 64 prompts per request", "batch", 24, 1)
        from service.serving.encoders import build_encoder
        from service.settings import Settings

        # the encoder alone right before and after the 8-client phase, so that both see the same phase of a shared
        # machine; the server is idle meanwhile
        encoder = None if stub else build_encoder(Settings(home=home))
        alone = [encoder_only_rate(encoder)] if encoder is not None else []
        clients8 = phase("8 concurrent clients, 1 prompt each", "single", max(2000, n_seq), LOAD_CLIENTS)  # 400: ~1 s
        if encoder is not None:
            alone.append(encoder_only_rate(encoder))
            rows.append(
                {
                    "section": "encoder",
                    "case": f"encoder only, {ENCODER_PROMPTS} short prompts in batches of {LOAD_CLIENTS}, in-process",
                    "per_s": round(statistics.mean(alone), 1),
                    "note": f"before / after the 8-client phase: {alone[0]:.0f} / {alone[1]:.0f}",
                }
            )
            report["end_to_end_vs_encoder"] = {
                "clients": LOAD_CLIENTS,
                "end_to_end_per_s": clients8["per_s"],
                "encoder_only_per_s": round(statistics.mean(alone), 1),
                "ratio": round(clients8["per_s"] / statistics.mean(alone), 3),
                "target_ratio": TARGET_RATIO,
                "p99_ms": clients8["p99"],
                "target_p99_ms": TARGET_P99_MS,
            }
        phase("GET /healthz, 8 concurrent clients (HTTP floor)", "healthz", 2000, 8)
        adds = TopicAddTimes()
        measure_topic_adds(port, 10, adds)  # benchmarks.serving.topic_add alternates builds
        for case, samples in (("idle", adds.idle), (f"{LOAD_CLIENTS} classify clients running", adds.loaded)):
            rows.append({"section": "http", "case": f"POST /v1/topics, 10 examples, {case}", **pct(samples)})
        metrics = http_get(port, "/metrics")[1]
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        report["server"] = proc_stats(proc.pid) | {
            "torch_imported_gauge": next(
                (ln.split()[-1] for ln in metrics.splitlines() if ln.startswith("lightguard_torch_imported")), "?"
            ),
            "libtorch_mapped": "libtorch" in maps,
            "microbatch": {
                ln.split()[0]: float(ln.split()[1])
                for ln in metrics.splitlines()
                if ln.startswith("lightguard_microbatch_")
            },
        }
    finally:
        stop_server(proc)


# ---------------------------------------------------------------------------- index scale (IVF)
def scale(
    rows: list[Row], report: dict[str, Any], sizes: list[int], real: np.ndarray | None, nprobes: list[int]
) -> None:
    from index import FaissStore

    rng = np.random.default_rng(0)
    dim = 384
    base = real if real is not None and len(real) else rng.normal(size=(1000, dim)).astype(np.float32)
    out: dict[str, Any] = {}
    if real is not None and len(real) > 2000:
        # Recall on real embeddings: hold out 500 exemplars as queries, index the rest with IVF (threshold 0).
        perm = rng.permutation(len(real))
        q, rest = real[perm[:500]], real[perm[500:]]
        ivf = FaissStore(dim, "bench", ann_threshold=0)
        ivf.add(range(len(rest)), rest)
        exact = np.argsort(-(q @ rest.T), axis=1)[:, :10]
        out["real"] = {"n": len(rest), "recall@10": _recall(ivf.search(q, 10)[1], exact)}
    for n in sizes:
        noise = 0.02  # per dimension: |noise| ≈ 0.39, cosine to the seed vector ≈ 0.93 (paraphrase-like spread)
        vecs = np.empty((n, dim), dtype=np.float32)
        for start in range(0, n, 100_000):
            m = min(100_000, n - start)
            chunk = base[rng.integers(0, len(base), m)] + noise * rng.normal(size=(m, dim)).astype(np.float32)
            vecs[start : start + m] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
        queries = base[rng.integers(0, len(base), 200)] + noise * rng.normal(size=(200, dim)).astype(np.float32)
        queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
        exact = np.concatenate(
            [np.argsort(-(queries @ vecs[s : s + 200_000].T), axis=1)[:, :10] + s for s in range(0, n, 200_000)],
            axis=1,
        )
        sims = np.concatenate([(queries @ vecs[s : s + 200_000].T) for s in range(0, n, 200_000)], axis=1)
        exact = np.take_along_axis(exact, np.argsort(-np.take_along_axis(sims, exact, 1), axis=1)[:, :10], 1)
        t = time.perf_counter()
        store = FaissStore(dim, "bench", ann_threshold=0)
        store.add(range(n), vecs)
        build = time.perf_counter() - t
        recalls = {}
        for nprobe in nprobes:
            lat = _one_query_latency(store, queries, nprobe)
            recalls[nprobe] = _recall(store.search(queries, 10, nprobe)[1], exact)
            rows.append(
                {
                    "section": "index",
                    "case": f"IVF search {n:,} synthetic x 1 query (k=10, nprobe={nprobe})",
                    **pct(lat),
                    "note": f"recall@10 {recalls[nprobe]:.3f}, build {build:.1f} s",
                }
            )
        t = time.perf_counter()
        store.remove(range(0, n, 100))
        removal = time.perf_counter() - t
        mem = store.memory_bytes()
        out[str(n)] = {
            "build_s": round(build, 1),
            "recall@10": recalls,
            "remove_1pct_s": round(removal, 2),
            "bytes_per_vector": round(mem / len(store), 1),
            "nlist": int(store._index.nlist),
        }
        del store, vecs
    report["scale"] = out


def _one_query_latency(store: Any, queries: np.ndarray, nprobe: int | None = None) -> list[float]:
    rows = iter(range(10**9))

    def one() -> None:
        i = next(rows) % len(queries)
        store.search(queries[i : i + 1], 10, nprobe)

    return timed(one, 200)


def _recall(found: np.ndarray, exact: np.ndarray) -> float:
    k = exact.shape[1]
    return round(float(np.mean([len(set(a[:k]) & set(e)) / k for a, e in zip(found, exact, strict=True)])), 4)


# ---------------------------------------------------------------------------- report
def table(rows: list[Row]) -> str:
    cols = ["section", "case", "p50", "p90", "p99", "per_s", "rss_mb", "server_cpu_ms_per_prompt"]
    cols += ["client_cpu_ms_per_prompt", "note"]
    heads = ["", "case", "p50 ms", "p90 ms", "p99 ms", "per s", "RSS MB", "server CPU ms/prompt"]
    heads += ["load generator CPU ms/prompt", "note"]
    return markdown_table(heads, ([r.get(c, "") for c in cols] for r in rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, default=Path(os.environ.get("LIGHTGUARD_HOME", VAR_DIR / "bench-home")))
    ap.add_argument("--only", default="micro,torch,server,scale")
    ap.add_argument("--scale", default="100000", help="comma-separated synthetic index sizes")
    ap.add_argument("--nprobe", default="32", help="comma-separated IVF nprobe values for the scale section")
    ap.add_argument("--requests", type=int, default=400, help="sequential HTTP requests")
    ap.add_argument("--out", type=Path, default=REPORTS_DIR / "bench.json")
    ap.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--stub-serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument(
        "--stub-encoder", action="store_true", help="server section: replace the model run by a stub (see stub_serve)"
    )
    args = ap.parse_args()
    if args.torch_worker:
        torch_worker()
        return
    if args.stub_serve:
        stub_serve(args.stub_serve)
        return
    only = set(args.only.split(","))
    rows: list[Row] = []
    report: dict[str, Any] = {"machine": machine(), "command": " ".join(sys.argv)}
    real = None
    if "micro" in only:
        micro(rows, report, args.home)
        real = report.pop("real_vectors")
    if "server" in only:
        server(rows, report, args.home, args.requests, args.stub_encoder)
    if "torch" in only:
        torch_compare(rows, report)
    if "scale" in only:
        sizes = [int(s) for s in args.scale.split(",") if s]
        scale(rows, report, sizes, real, [int(p) for p in args.nprobe.split(",") if p])
    report["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    report["rows"] = rows
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    md = table(rows)
    args.out.with_suffix(".md").write_text(md + "\n")
    print(md)
    print("\n".join(ratio_lines(report)))
    extra = {k: v for k, v in report.items() if k not in ("rows",)}
    print(json.dumps(extra, indent=2))


if __name__ == "__main__":
    main()
