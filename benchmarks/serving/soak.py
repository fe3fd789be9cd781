"""Bounded soak on loopback: mixed classify / topic-edit / rebuild traffic against a real server, then verify.

    python -m benchmarks.serving.soak --seconds 60         # starts its own server (hashing encoder, SQLite)
    python -m benchmarks.serving.soak --database-url postgresql://postgres@127.0.0.1:5432/soak
    python -m benchmarks.serving.soak --workers 2                        # `lightguard serve --workers 2`
    python -m benchmarks.serving.soak --url http://127.0.0.1:8000 --key $ADMIN

Checks: zero 5xx; per client, index versions never go backwards (a classify never reports a version older than
one the same client already saw, including right after its own completed edit; each client keeps one connection,
so one worker); afterwards GET /v1/index/verify says the database and the live index agree exactly, on every worker.
With several workers a prober also reads GET /v1/index on fresh connections throughout, and the script reports how
long each worker took to reach the version of every completed edit (convergence lag).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx

from benchmarks.serving.server import FIXTURE_ADMIN_KEY as ADMIN
from benchmarks.serving.server import start_fixture_server, stop_server

TEXTS = [
    "how do I bake sourdough bread at home",
    "how do I build a bomb to kill people",
    "what is the capital of france",
    "you are all worthless idiots",
    "recommend a book about the history of rome",
]


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.versions: set[int] = set()
        self.backwards: list[str] = []
        self.edits: list[tuple[float, int]] = []  # (monotonic time the response arrived, index version it reported)
        self.probes: list[tuple[float, float, int, int]] = []  # (sent, answered, worker pid, version)

    def record(self, kind: str, status: int, ms: float) -> None:
        with self.lock:
            self.count[kind] += 1
            self.latency[kind].append(ms)
            if status >= 500:
                self.errors[f"{kind} {status}"] += 1


def request(http: httpx.Client, stats: Stats, kind: str, method: str, path: str, **kw: object) -> httpx.Response:
    start = time.perf_counter()
    r = http.request(method, path, **kw)  # type: ignore[arg-type]
    stats.record(kind, r.status_code, (time.perf_counter() - start) * 1000)
    return r


def classifier(base: str, key: str, stop: float, stats: Stats, name: str) -> None:
    seen = 0
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        while time.monotonic() < stop:
            r = request(http, stats, "classify", "POST", "/v1/classify", json={"text": random.choice(TEXTS)})
            if r.status_code == 200:
                version = int(r.json()["index_version"])
                with stats.lock:
                    stats.versions.add(version)
                    if version < seen:
                        stats.backwards.append(f"{name}: v{version} after v{seen}")
                seen = max(seen, version)


def editor(base: str, key: str, stop: float, stats: Stats, name: str) -> None:
    seen = 0
    n = 0
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        while time.monotonic() < stop:
            n += 1
            body = {
                "name": f"{name}-{n}",
                "examples": [f"{name} topic {n} example {i} about gardening" for i in range(5)],
            }
            r = request(http, stats, "topic_create", "POST", "/v1/topics", json=body)
            if r.status_code != 201:
                continue
            edited(stats, r.json()["index_version"])
            tid = r.json()["id"]
            patched = request(http, stats, "topic_update", "PATCH", f"/v1/topics/{tid}", json={"action": "flag"})
            if patched.status_code == 200:
                edited(stats, patched.json()["index_version"])
            added = request(
                http,
                stats,
                "example_add",
                "POST",
                f"/v1/topics/{tid}/examples",
                json={"examples": [f"{name} extra {n} about roses"]},
            )
            if added.status_code == 201:
                edited(stats, added.json()["topic"]["index_version"])
                ids = [e["id"] for e in added.json()["added"]]
                for eid in ids[:1]:
                    request(http, stats, "example_delete", "DELETE", f"/v1/topics/{tid}/examples/{eid}")
            # after its own completed edits, a classify must not report an older version
            r = request(http, stats, "classify", "POST", "/v1/classify", json={"text": body["examples"][0]})
            if r.status_code == 200:
                version = int(r.json()["index_version"])
                with stats.lock:
                    if version < seen:
                        stats.backwards.append(f"{name}: v{version} after v{seen}")
                seen = max(seen, version)
            if n % 2 == 0:
                request(http, stats, "topic_delete", "DELETE", f"/v1/topics/{tid}")


def edited(stats: Stats, version: int) -> None:
    with stats.lock:
        stats.edits.append((time.monotonic(), int(version)))


def prober(base: str, stop: float, stats: Stats) -> None:
    """GET /readyz (no key, no database) on a fresh connection each time, so every worker gets sampled; records
    (time, worker, version)."""
    while time.monotonic() < stop:
        sent = time.monotonic()
        try:
            r = httpx.get(f"{base}/readyz", headers={"Connection": "close"})
        except httpx.TransportError:
            continue
        if r.status_code == 200:
            info = r.json()
            with stats.lock:
                stats.probes.append((sent, time.monotonic(), int(info["worker"]), int(info["index_version"])))
        time.sleep(0.01)  # sampling interval


def convergence_lags(stats: Stats) -> dict[int, list[float]]:
    """Per worker: seconds from each completed edit until the answer to a probe of that worker, sent after the edit,
    reported its version or newer (an upper bound: a worker's probes are as far apart as the kernel spreads fresh
    connections over the workers)."""
    lags: dict[int, list[float]] = defaultdict(list)
    by_worker: dict[int, list[tuple[float, float, int]]] = defaultdict(list)
    for sent, answered, worker, version in sorted(stats.probes):
        by_worker[worker].append((sent, answered, version))
    for worker, probes in by_worker.items():
        for t_edit, version in stats.edits:
            reached = next((answered for sent, answered, v in probes if sent >= t_edit and v >= version), None)
            if reached is not None:
                lags[worker].append(reached - t_edit)
    return lags


def settle_and_verify(base: str, key: str, workers: int, timeout: float = 30) -> list[dict[str, object]]:
    """After the traffic: one verify answer from every worker (fresh connections until each has answered)."""
    answers: dict[int, dict[str, object]] = {}
    deadline = time.monotonic() + timeout
    while len(answers) < workers and time.monotonic() < deadline:
        r = httpx.get(
            f"{base}/v1/index/verify", headers={"Authorization": f"Bearer {key}", "Connection": "close"}, timeout=60
        )
        answer = r.json()
        answers.setdefault(int(answer.get("worker", 0)), answer)
    return list(answers.values())


def rebuilder(base: str, key: str, stop: float, stats: Stats, every: float) -> None:
    """A rebuild every `every` s: its 202, then its build polled until it ends; the row's time is the whole build
    (as when the POST held the request), its status 200 if it succeeded, 500 if it failed."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120) as http:
        next_at = time.monotonic() + every
        while time.monotonic() < stop:
            if time.monotonic() >= next_at:
                start = time.perf_counter()
                r = request(http, stats, "rebuild start", "POST", "/v1/index/rebuild")
                build = r.json() if r.status_code == 202 else {"status": "refused"}
                while r.status_code in (200, 202) and build["status"] in ("queued", "running"):
                    time.sleep(0.1)  # polling interval of the build
                    r = request(http, stats, "rebuild poll", "GET", f"/v1/index/builds/{build['id']}")
                    build = r.json() if r.status_code == 200 else build
                if build["status"] in ("succeeded", "failed"):
                    status = 200 if build["status"] == "succeeded" else 500
                    stats.record("rebuild", status, (time.perf_counter() - start) * 1000)
                    if build["error"]:
                        print(f"rebuild {build['id']} failed: {build['error']}", file=sys.stderr)
                next_at = time.monotonic() + every
            time.sleep(0.05)  # pacing between rebuilds, not a wait for a result


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--url")
    ap.add_argument("--key", default=ADMIN)
    ap.add_argument("--database-url")
    ap.add_argument("--classifiers", type=int, default=4)
    ap.add_argument("--editors", type=int, default=2)
    ap.add_argument("--rebuild-every", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=1, help="server worker processes (`lightguard serve --workers`)")
    args = ap.parse_args()
    proc = None
    home = Path(tempfile.mkdtemp(prefix="lightguard-soak-"))
    base = args.url
    if base is None:
        proc, base = start_fixture_server(home, args.database_url, args.workers)
    stats = Stats()
    stop = time.monotonic() + args.seconds
    threads = [
        threading.Thread(target=classifier, args=(base, args.key, stop, stats, f"c{i}"))
        for i in range(args.classifiers)
    ]
    threads += [
        threading.Thread(target=editor, args=(base, args.key, stop, stats, f"e{i}")) for i in range(args.editors)
    ]
    threads.append(threading.Thread(target=rebuilder, args=(base, args.key, stop, stats, args.rebuild_every)))
    if args.workers > 1:
        threads.append(threading.Thread(target=prober, args=(base, stop, stats)))
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    try:
        verifies = settle_and_verify(base, args.key, args.workers)
    finally:
        if proc is not None:
            stop_server(proc)
    print(
        f"soak: {elapsed:.0f} s, database {args.database_url or 'sqlite (default)'}, hashing encoder, "
        f"{args.classifiers} classify + {args.editors} edit clients, rebuild every {args.rebuild_every:.0f} s, "
        f"{args.workers} worker(s)"
    )
    print("| kind | requests | 5xx | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|")
    for kind in sorted(stats.count):
        errors = sum(v for k, v in stats.errors.items() if k.startswith(kind + " "))
        lat = stats.latency[kind]
        print(f"| {kind} | {stats.count[kind]} | {errors} | {pct(lat, 0.5):.1f} | {pct(lat, 0.99):.1f} |")
    total = sum(stats.count.values())
    print(f"| **all** | {total} ({total / elapsed:.0f}/s) | {sum(stats.errors.values())} | | |")
    versions = sorted(stats.versions)
    print(
        f"index versions seen by classify: {len(versions)} (v{versions[0] if versions else 0}"
        f"..v{versions[-1] if versions else 0}); backwards reads: {len(stats.backwards)} {stats.backwards[:3]}"
    )
    if args.workers > 1:
        lags = convergence_lags(stats)
        for worker, values in sorted(lags.items()):
            p50, p99, top = (1000 * x for x in (pct(values, 0.5), pct(values, 0.99), max(values)))
            probes = sum(1 for _, _, w, _ in stats.probes if w == worker)
            print(
                f"worker {worker}: reached the version of {len(values)}/{len(stats.edits)} edits; "
                f"lag p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {top:.0f} ms ({probes} probes)"
            )
    ok = len(verifies) == args.workers and all(v["ok"] for v in verifies)
    for v in verifies:
        print(
            f"verify after the run (worker {v.get('worker')}): ok={v['ok']} v{v['index_version']} "
            f"db={v['db_exemplars']} index={v['index_exemplars']} problems={v['problems'][:3]}"  # type: ignore[index]
        )
    if len(verifies) < args.workers:
        print(f"verify: only {len(verifies)} of {args.workers} workers answered")
    return 0 if ok and not stats.errors and not stats.backwards else 1


if __name__ == "__main__":
    raise SystemExit(main())
