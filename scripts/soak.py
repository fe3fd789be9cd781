"""Bounded soak on loopback: mixed classify / topic-edit / rebuild traffic against a real server, then verify.

    python scripts/soak.py --seconds 60                       # starts its own server (hashing encoder, SQLite)
    python scripts/soak.py --database-url postgresql://postgres@127.0.0.1:5432/soak
    python scripts/soak.py --url http://127.0.0.1:8000 --key $ADMIN

Checks: zero 5xx; per client, index versions never go backwards (a classify never reports a version older than
one the same client already saw, including right after its own completed edit); afterwards GET /v1/index/verify
says the database and the live index agree exactly. One uvicorn worker: the guard lives in process memory (see
docs/reliability.md for why --workers 2 is not offered).
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "lg_soak_admin_key_0123456789"
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
            tid = r.json()["id"]
            request(http, stats, "topic_update", "PATCH", f"/v1/topics/{tid}", json={"action": "flag"})
            added = request(
                http,
                stats,
                "example_add",
                "POST",
                f"/v1/topics/{tid}/examples",
                json={"examples": [f"{name} extra {n} about roses"]},
            )
            if added.status_code == 201:
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


def rebuilder(base: str, key: str, stop: float, stats: Stats, every: float) -> None:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120) as http:
        next_at = time.monotonic() + every
        while time.monotonic() < stop:
            if time.monotonic() >= next_at:
                request(http, stats, "rebuild", "POST", "/v1/index/rebuild")
                next_at = time.monotonic() + every
            time.sleep(0.05)  # pacing between rebuilds, not a wait for a result


def start_server(home: Path, database_url: str | None) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIGHTGUARD_")}
    env |= {
        "LIGHTGUARD_HOME": str(home),
        "LIGHTGUARD_ENCODER": "hashing",
        "LIGHTGUARD_ADMIN_KEY": ADMIN,
        "LIGHTGUARD_DATA_DIR": str(ROOT / "tests" / "service" / "fixtures"),
    }
    if database_url:
        env["LIGHTGUARD_DATABASE_URL"] = database_url
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "service.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=(home / "server.log").open("w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {(home / 'server.log').read_text()}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # polling interval under a deadline
    raise SystemExit("server not ready in 120 s")


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
    args = ap.parse_args()
    proc = None
    home = Path(tempfile.mkdtemp(prefix="lightguard-soak-"))
    base = args.url
    if base is None:
        proc, base = start_server(home, args.database_url)
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
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    try:
        verify = httpx.get(
            f"{base}/v1/index/verify", headers={"Authorization": f"Bearer {args.key}"}, timeout=60
        ).json()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
    print(
        f"soak: {elapsed:.0f} s, database {args.database_url or 'sqlite (default)'}, hashing encoder, "
        f"{args.classifiers} classify + {args.editors} edit clients, rebuild every {args.rebuild_every:.0f} s"
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
    print(
        f"verify after the run: ok={verify['ok']} db={verify['db_exemplars']} index={verify['index_exemplars']} "
        f"problems={verify['problems'][:3]}"
    )
    return 0 if verify["ok"] and not stats.errors and not stats.backwards else 1


if __name__ == "__main__":
    raise SystemExit(main())
