"""Fairness under heavy requests: short-prompt latency alone and while heavy clients send large requests in a loop.

    .venv/bin/python -m benchmarks.serving.fairness                         # this tree's server
    .venv/bin/python -m benchmarks.serving.fairness --rev 07519e3 --home var/bench-home-before   # an older build
    .venv/bin/python -m benchmarks.serving.fairness --heavy-clients 1,4 --short 300 --doc-chars 99000
    .venv/bin/python -m benchmarks.serving.fairness --costs     # model runs of real documents (what the budget admits)

A real `lightguard serve` (the shipped settings) on loopback. One sequential client sends short prompts (~30
tokens) and measures each answer; alongside it 0, 1 or 4 heavy clients each send one large request after another:
`--doc-texts` texts of `--doc-chars` characters (default one 99,000-character document, the largest text the
defaults accept, ~260-350 model runs). Reports the short prompts' p50 / p99 / max and the heavy clients' own
throughput (requests and characters per second). Then it sends the request that froze the server in issue 22 (100
texts of 99,000 characters, 9.9 MB) once and reports its status and how long the answer took (413 now, refused
after pricing a budget's worth of text). Every loop is bounded in count and time; only loopback is contacted.

`--rev REV` serves a git revision instead (a detached worktree under var/ab/, as benchmarks.serving.ab_server
does) with this tree's model; give it its own `--home`, since homes are migrated to the schema of the build that
opens them.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.layout import DATA_DIR, MODELS_DIR, REPO, REPORTS_DIR, VAR_DIR
from benchmarks.machine import machine
from benchmarks.samples import long_prompt, short_prompts
from benchmarks.serving.server import build_env, checkout, free_port, serve_cmd, start_server, stop_server

HEAVY_MAX_S = 600.0  # a heavy client never runs longer than this, whatever happens to the short client


def post(conn: http.client.HTTPConnection, body: bytes) -> tuple[int, bytes]:
    conn.request("POST", "/v1/classify", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    return resp.status, resp.read()


def heavy_worker(port: int, body_file: Path, stop_file: Path) -> None:
    """Send the large request again and again until `stop_file` exists (or HEAVY_MAX_S); print what got through."""
    body = body_file.read_bytes()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HEAVY_MAX_S)
    start = time.perf_counter()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    while not stop_file.exists() and time.perf_counter() - start < HEAVY_MAX_S:
        t = time.perf_counter()
        status, _ = post(conn, body)
        latencies.append(time.perf_counter() - t)
        statuses[status] = statuses.get(status, 0) + 1
    conn.close()
    print(json.dumps({"latencies": latencies, "statuses": statuses, "wall": time.perf_counter() - start}))


def short_client(port: int, prompts: list[str], n: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HEAVY_MAX_S)
    out = []
    for i in range(n):
        t = time.perf_counter()
        status, data = post(conn, json.dumps({"text": prompts[i % len(prompts)]}).encode())
        out.append(time.perf_counter() - t)
        if status != 200:
            raise RuntimeError(f"short prompt: {status} {data[:200]!r}")
    conn.close()
    return out


def measure(port: int, prompts: list[str], n_short: int, heavy: int, body_file: Path, tmp: Path) -> dict[str, Any]:
    stop = tmp / f"stop-{heavy}"
    stop.unlink(missing_ok=True)
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.serving.fairness",
                "--heavy-worker",
                str(port),
                str(body_file),
                str(stop),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for _ in range(heavy)
    ]
    try:
        if heavy:  # the heavy clients' first requests are in the server before the short client starts
            time.sleep(1.0)  # a bench's ramp-up, not a test's wait
        samples = short_client(port, prompts, n_short)
    finally:
        stop.touch()
    results = [json.loads(w.communicate(timeout=HEAVY_MAX_S + 60)[0].strip().splitlines()[-1]) for w in workers]
    ms = np.asarray(samples) * 1000
    row: dict[str, Any] = {
        "heavy_clients": heavy,
        "short_p50_ms": round(float(np.percentile(ms, 50)), 2),
        "short_p99_ms": round(float(np.percentile(ms, 99)), 2),
        "short_max_ms": round(float(ms.max()), 2),
    }
    if heavy:
        done = sum(len(r["latencies"]) for r in results)
        wall = max(r["wall"] for r in results)
        doc_chars = json.loads(body_file.read_text())["texts"]
        row |= {
            "heavy_requests": done,
            "heavy_statuses": {k: sum(r["statuses"].get(k, 0) for r in results) for k in results[0]["statuses"]},
            "heavy_req_per_s": round(done / wall, 3),
            "heavy_chars_per_s": round(done * sum(len(t) for t in doc_chars) / wall),
            "heavy_p50_s": round(float(np.median([x for r in results for x in r["latencies"]])), 2) if done else None,
        }
    return row


def freeze_request(port: int, doc: str) -> dict[str, Any]:
    """The request of issue 22: 100 texts of 99,000 characters in one POST."""
    body = json.dumps({"texts": [doc[:99_000]] * 100}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HEAVY_MAX_S)
    t = time.perf_counter()
    try:
        status, data = post(conn, body)
    except TimeoutError:
        return {"status": None, "seconds": round(time.perf_counter() - t, 2), "detail": "no answer (gave up)"}
    finally:
        conn.close()
    detail = json.loads(data).get("detail", "") if status != 200 else ""
    return {"status": status, "seconds": round(time.perf_counter() - t, 2), "detail": detail[:300]}


def document_costs(full: str) -> list[dict[str, Any]]:
    """Model runs of real documents (this repository's docs: English prose with tables and code) and of the bench's
    long document, under the shipped scoring configuration: what LIGHTGUARD_MAX_REQUEST_COST must admit."""
    from index import OnnxEncoder, load_guard_config
    from index.units import plan_units

    encoder = OnnxEncoder(MODELS_DIR / "base")
    config = load_guard_config(DATA_DIR / "scoring.json")
    docs = {p.relative_to(REPO).as_posix(): p.read_text(encoding="utf-8") for p in sorted((REPO / "docs").glob("*.md"))}
    docs |= {"README.md": (REPO / "README.md").read_text(encoding="utf-8"), "bench document": full[:99_000]}
    rows = []
    for name, text in docs.items():
        plan = plan_units(encoder, config, [text[:100_000]])
        rows.append({"document": name, "chars": len(text[:100_000]), "windows": len(plan.windows), "runs": plan.cost})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, default=Path(os.environ.get("LIGHTGUARD_HOME", VAR_DIR / "bench-home")))
    ap.add_argument("--rev", default=".", help="git revision to serve (default: this working tree)")
    ap.add_argument("--heavy-clients", default="0,1,4")
    ap.add_argument("--short", type=int, default=300, help="short prompts sent per phase, one at a time")
    ap.add_argument("--doc-chars", type=int, default=99_000)
    ap.add_argument("--doc-texts", type=int, default=1)
    ap.add_argument("--skip-freeze", action="store_true", help="do not send the 100 x 99,000-character request")
    ap.add_argument("--out", type=Path, default=REPORTS_DIR / "bench_fairness.json")
    ap.add_argument("--costs", action="store_true", help="only print the model runs of real documents and exit")
    ap.add_argument("--heavy-worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.heavy_worker:
        port, body, stop = args.heavy_worker
        heavy_worker(int(port), Path(body), Path(stop))
        return
    if args.costs:
        print("| document | characters | windows | model runs (at most) | characters per run |\n|---|---|---|---|---|")
        for row in document_costs(long_prompt(20_000)):
            print(
                f"| {row['document']} | {row['chars']} | {row['windows']} | {row['runs']} "
                f"| {row['chars'] / row['runs']:.0f} |"
            )
        return
    tree = checkout(args.rev)
    env = build_env(tree, args.home)
    full = long_prompt(20_000)  # ~120,000 characters of test-split prompts
    doc = full[: args.doc_chars]
    tmp = VAR_DIR / "bench-fairness"
    tmp.mkdir(parents=True, exist_ok=True)
    body_file = tmp / "heavy.json"
    body_file.write_text(json.dumps({"texts": [doc] * args.doc_texts}))
    prompts = short_prompts(256)
    port = free_port()
    proc = start_server(serve_cmd(port), port, env)
    report: dict[str, Any] = {"machine": machine(), "command": " ".join(sys.argv), "rev": args.rev, "rows": []}
    try:
        short_client(port, prompts, 20)  # warm-up
        for heavy in (int(h) for h in args.heavy_clients.split(",")):
            row = measure(port, prompts, args.short, heavy, body_file, tmp)
            report["rows"].append(row)
            print(json.dumps(row), flush=True)
        if not args.skip_freeze:
            report["freeze_request"] = freeze_request(port, full)
            print(json.dumps(report["freeze_request"]), flush=True)
    finally:
        stop_server(proc, 60)
    report["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print("| heavy clients | short p50 ms | short p99 ms | short max ms | heavy requests/s | heavy chars/s |")
    print("|---|---|---|---|---|---|")
    for r in report["rows"]:
        print(
            f"| {r['heavy_clients']} | {r['short_p50_ms']} | {r['short_p99_ms']} | {r['short_max_ms']} "
            f"| {r.get('heavy_req_per_s', '-')} | {r.get('heavy_chars_per_s', '-')} |"
        )


if __name__ == "__main__":
    main()
