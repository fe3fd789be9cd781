"""Build data/safety.jsonl, data/background.jsonl and data/README.md deterministically from the shared datasets.

    .venv/bin/python -m benchmarks.data.build            # reads ../shared/datasets (or $LIGHTGUARD_DATASETS)
    .venv/bin/python -m benchmarks.data.build --datasets ../shared/datasets --out data

The label tables and the sources are data (benchmarks/data/labels.toml, sources.toml); the steps are
benchmarks.data.pipeline, the README benchmarks.data.readme.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections import Counter
from pathlib import Path

from benchmarks.data.pipeline import build_background, build_safety, load_exclude, to_json
from benchmarks.data.readme import render_readme
from benchmarks.layout import DATA_DIR, REPO


def default_datasets_dir() -> Path:
    """`$LIGHTGUARD_DATASETS`, else `<repo>/../shared/datasets`."""
    env = os.environ.get("LIGHTGUARD_DATASETS")
    return Path(env) if env else REPO.parent / "shared" / "datasets"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=default_datasets_dir(), help="shared datasets folder")
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="output folder (default: <repo>/data)")
    args = parser.parse_args(argv)
    datasets: Path = args.datasets
    out: Path = args.out
    exclude_path = datasets / "EXCLUDE.sha256"
    if not (datasets / "safety").is_dir() or not exclude_path.is_file():
        parser.error(f"{datasets} must hold safety/ and EXCLUDE.sha256 (set --datasets or LIGHTGUARD_DATASETS)")

    rows, report = build_safety(datasets, exclude_path)
    background = build_background(datasets, rows, load_exclude(exclude_path))
    out.mkdir(parents=True, exist_ok=True)
    (out / "safety.jsonl").write_text("".join(to_json(c, s) + "\n" for c, s in rows), encoding="utf-8")
    (out / "background.jsonl").write_text(
        "".join(
            json.dumps(
                {"text": c.text, "source": c.source, "license": c.license, "noncommercial": c.noncommercial},
                ensure_ascii=False,
                sort_keys=True,
            )
            + "\n"
            for c in background
        ),
        encoding="utf-8",
    )
    if exclude_path.resolve() != (out / "EXCLUDE.sha256").resolve():
        shutil.copyfile(exclude_path, out / "EXCLUDE.sha256")
    (out / "README.md").write_text(render_readme(rows, report, background), encoding="utf-8")

    print(f"safety.jsonl: {len(rows)} rows {dict(sorted(Counter(s for _, s in rows).items()))}")
    print(f"background.jsonl: {len(background)} rows")
    print(f"role-play set-ups dropped as jailbreak-like: {report.roleplay_dropped}")
    for name, counts in (
        ("held-out (EXCLUDE)", report.excluded),
        ("duplicates", report.duplicates),
        ("safe/unsafe conflicts", report.conflicts),
        ("over cap", report.capped or Counter()),
    ):
        print(f"dropped {name}: {sum(counts.values())}")
        for source, n in sorted(counts.items()):
            print(f"    {source}: {n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
