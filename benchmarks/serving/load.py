"""The HTTP load generator: one process (so its CPU is not the server's), N client threads on keep-alive
connections, short test-split prompts. `run_load` starts it as `python -m benchmarks.serving.load PORT MODE N
CLIENTS` and reads back per-request latencies, wall time, prompts sent and the generator's own CPU time (it shares
the machine's cores with the server: docs/performance.md measures what it takes)."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from typing import Any, Literal

from benchmarks.layout import REPO
from benchmarks.samples import short_prompts

Mode = Literal["single", "batch", "healthz"]  # 1 prompt, 64 prompts per request, GET /healthz (the HTTP floor)
MODES: tuple[Mode, ...] = ("single", "batch", "healthz")


def load_worker(port: int, mode: Mode, n: int, clients: int) -> dict[str, Any]:
    prompts = short_prompts(256)

    def client_loop(idx: int, count: int, out: list[float], size: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        for i in range(count):
            if size == 1:
                body = json.dumps({"text": prompts[(idx * 7919 + i) % len(prompts)]})
            else:
                body = json.dumps({"texts": [prompts[(i + j) % len(prompts)] for j in range(size)]})
            t = time.perf_counter()
            if mode == "healthz":  # the HTTP stack alone: routing, middleware, a small JSON response
                conn.request("GET", "/healthz")
            else:
                conn.request("POST", "/v1/classify", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            out.append(time.perf_counter() - t)
            if resp.status != 200:
                raise RuntimeError(f"{resp.status}: {data[:200]!r}")
        conn.close()

    size = 64 if mode == "batch" else 1
    client_loop(0, 5, [], size)  # warm-up
    results: list[list[float]] = [[] for _ in range(clients)]
    threads = [threading.Thread(target=client_loop, args=(c, n // clients, results[c], size)) for c in range(clients)]
    t, cpu = time.perf_counter(), time.process_time()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    samples = [s for r in results for s in r]
    return {"samples": samples, "wall": wall, "prompts": len(samples) * size, "client_cpu_s": cpu}


def run_load(port: int, mode: Mode, requests: int, clients: int) -> dict[str, Any]:
    """The load generator in its own process: per-request latencies, wall time, prompts sent and its CPU time."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.serving.load", str(port), mode, str(requests), str(clients)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 4:
        raise SystemExit("usage: python -m benchmarks.serving.load PORT MODE REQUESTS CLIENTS")
    port, mode, n, clients = args
    if mode not in MODES:
        raise SystemExit(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    print(json.dumps(load_worker(int(port), mode, int(n), int(clients))))  # checked above


if __name__ == "__main__":
    main()
