"""Schemathesis against the OpenAPI schema of a live server on loopback: every operation, with an admin key.

    python -m benchmarks.serving.fuzz_api                          # own server: hashing encoder, SQLite, fixture seed
    python -m benchmarks.serving.fuzz_api --max-examples 100 --seed 7
    python -m benchmarks.serving.fuzz_api --database-url postgresql://postgres@127.0.0.1:5432/fuzz
    python -m benchmarks.serving.fuzz_api --url http://127.0.0.1:8000 --key $ADMIN

Runs `schemathesis run` with every phase (examples, coverage, fuzzing, stateful) and every check, then prints the
counts from its JSON report: operations tested, test cases generated, failures by kind. Exits 1 on any failure:
a server error or a response that broke the documented contract (ST1xx: 5xx, undocumented status, content type,
headers or body not matching the schema, slower than 10 s), a schema-valid request refused or a schema-violating
one accepted (ST2xx: the schema says what the API accepts), or a failed security check (ST3xx: auth ignored, a
deleted resource still served). schemathesis.toml beside this file and the hooks in fuzz_hooks.py hold what the
schema cannot say (timeouts that pass; labels paired with texts, `since` before `until`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.serving.server import FIXTURE_ADMIN_KEY as ADMIN
from benchmarks.serving.server import start_fixture_server, stop_server

FATAL_PREFIXES = ("ST1", "ST2", "ST3")
HERE = Path(__file__).resolve().parent


def run_schemathesis(base: str, key: str, args: argparse.Namespace, report: Path) -> int:
    cmd = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "run",
        f"{base}/openapi.json",
        "--header",
        f"Authorization: Bearer {key}",
        "--checks",
        "all",
        "--continue-on-failure",  # an expected finding on one case must not end that operation's fuzzing
        "--max-examples",
        str(args.max_examples),
        "--seed",
        str(args.seed),
        "--workers",
        "1",
        "--request-timeout",
        "60",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    if args.phases:
        cmd += ["--phases", args.phases]
    # in the run's own folder: schemathesis keeps a `.schemathesis` cache in its working directory
    env = os.environ | {"SCHEMATHESIS_HOOKS": "benchmarks.serving.fuzz_hooks", "PYTHONPATH": str(HERE.parents[1])}
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=report.parent, env=env)
    if args.verbose or not report.is_file():
        print(done.stdout[-20000:], done.stderr[-5000:], sep="\n")
    return done.returncode


def summarise(report: dict[str, Any]) -> int:
    ops, cases = report["operations"], report["test_cases"]
    print(
        f"schemathesis {report['schemathesis_version']}, seed {report['seed']}, {report['running_time']:.0f} s, "
        f"stop: {report['stop_reason']}"
    )
    print(f"operations: {ops['tested']} tested of {ops['total']} ({ops['errored']} errored, {ops['skipped']} skipped)")
    print(
        f"test cases: {cases['generated']} generated, {cases['with_failures']} with failures, "
        f"{cases['unique_failures']} unique failures, {cases['errored']} errored"
    )
    phases = ", ".join(f"{name} {p['status']}" for name, p in report["phases"].items())
    print(f"phases: {phases}")
    fatal = 0
    print("| code | failure | count | operations |\n|---|---|---:|---|")
    for failure in sorted(report["failures"], key=lambda f: f["code"]):
        fatal += failure["count"] if failure["code"].startswith(FATAL_PREFIXES) else 0
        ops_list = ", ".join(failure["operations"][:6]) + (" ..." if len(failure["operations"]) > 6 else "")
        print(f"| {failure['code']} | {failure['title']} | {failure['count']} | {ops_list} |")
    if not report["failures"]:
        print("| - | none | 0 | |")
    for error in report["errors"]:
        print(f"error: {error}")
    print(f"server errors or contract / security violations (ST1xx, ST2xx, ST3xx): {fatal}")
    return 1 if fatal or report["errors"] or not report["complete"] else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="fuzz a running server instead of starting one")
    ap.add_argument("--key", default=ADMIN, help="admin API key for --url")
    ap.add_argument("--database-url", help="database of the server this script starts (default: SQLite)")
    ap.add_argument("--max-examples", type=int, default=50, help="test cases per operation and phase")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--phases", help="comma-separated subset of examples,coverage,fuzzing,stateful")
    ap.add_argument("--verbose", action="store_true", help="print schemathesis's own report (every failure, curl)")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="lightguard-fuzz-"))
    proc, base = (None, args.url) if args.url else start_fixture_server(home, args.database_url, 1)
    try:
        run_schemathesis(base, args.key, args, home / "schemathesis.json")
    finally:
        if proc is not None:
            stop_server(proc)
    report = json.loads((home / "schemathesis.json").read_text())
    return summarise(report)


if __name__ == "__main__":
    raise SystemExit(main())
