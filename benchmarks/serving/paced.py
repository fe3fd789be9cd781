"""Server CPU and latency of one client at a fixed request rate — the traffic of most deployments, between the
bench's back-to-back and 8-client cases — for server settings side by side.

    LIGHTGUARD_HOME=var/bench-home .venv/bin/python -m benchmarks.serving.paced \
        --arm spin --arm nospin LIGHTGUARD_ENCODER_SPIN=false --rates 0,50,10      # ~2 min

Each arm starts `lightguard serve` on the home with its KEY=VALUE settings, warms up with 300 back-to-back
requests, then sends `--requests` single-prompt requests at each rate (0 = back to back) and prints the server's
CPU per request (from /proc) and the client's p50 / p90 latency. CPU per request is what a rate costs a host: at
10 requests/s, 40 ms a request is 40 % of a core spent while the server is mostly idle.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import time
from pathlib import Path

import numpy as np

from benchmarks.layout import VAR_DIR
from benchmarks.machine import machine, proc_stats
from benchmarks.samples import short_prompts
from benchmarks.serving.server import build_env, free_port, serve_cmd, start_server, stop_server
from benchmarks.tables import markdown_table


def paced(port: int, pid: int, rate: float, n: int, prompts: list[str]) -> dict[str, float]:
    """`n` requests, one at a time, started every 1/`rate` s (back to back when `rate` is 0)."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Content-Type": "application/json"}
    latencies = []
    cpu0 = proc_stats(pid)["cpu_s"]
    for i in range(n):
        start = time.perf_counter()
        conn.request("POST", "/v1/classify", json.dumps({"text": prompts[i % len(prompts)]}), headers)
        conn.getresponse().read()
        latencies.append(time.perf_counter() - start)
        if rate > 0:
            time.sleep(max(0.0, 1 / rate - (time.perf_counter() - start)))
    cpu = proc_stats(pid)["cpu_s"] - cpu0
    conn.close()
    ms = np.asarray(latencies) * 1000
    return {"cpu_ms": 1000 * cpu / n, "p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arm", nargs="+", action="append", metavar="NAME [KEY=VALUE]", required=True)
    ap.add_argument("--rates", default="0,50,10", help="requests per second, comma-separated (0: back to back)")
    ap.add_argument("--requests", type=int, default=200, help="requests per arm and rate")
    ap.add_argument("--home", type=Path, default=Path(os.environ.get("LIGHTGUARD_HOME", VAR_DIR / "bench-home")))
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    prompts = short_prompts(256)
    m = machine()
    print(f"CPU: {m['cpu']}, {m['cores']} cores, int8: {m['int8_isa']}")
    rows = []
    for name, *pairs in args.arm:
        env = build_env(None, args.home, dict(p.split("=", 1) for p in pairs))
        port = free_port()
        proc = start_server(serve_cmd(port), port, env)
        try:
            paced(port, proc.pid, 0, 300, prompts)  # warm-up
            for rate in rates:
                r = paced(port, proc.pid, rate, args.requests, prompts)
                rows.append([name, "back to back" if rate == 0 else f"{rate:g} /s", *(f"{r[k]:.2f}" for k in r)])
        finally:
            stop_server(proc)
    print(markdown_table(["arm", "rate", "server CPU ms/request", "p50 ms", "p90 ms"], rows))


if __name__ == "__main__":
    main()
