"""Is an unsafe sentence buried in long benign text flagged by the *served* guard (not the evasion tests' toy one)?

    .venv/bin/python scripts/check_buried.py [--home var/bench-home]

Classifies each of tests/index/test_evasion.py's model prompts alone and buried after 20 and before 10 paragraphs of
its benign filler (~300 words), with the guard the service would serve (LIGHTGUARD_HOME), at the configured window
size and at smaller ones, and prints one line per window size.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "index"))


def main() -> None:
    from test_evasion import FILLER, MODEL_PROMPTS

    from service.context import open_guard
    from service.settings import Settings

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, default=Path(os.environ.get("LIGHTGUARD_HOME", REPO / "var" / "bench-home")))
    ap.add_argument("--windows", type=int, nargs="*", default=[64, 32])
    args = ap.parse_args()
    guard = open_guard(Settings(home=args.home))
    served = guard.config
    for window in [served.window_tokens, *args.windows]:
        guard.config = dataclasses.replace(served, window_tokens=window)
        cells = []
        for category, text in MODEL_PROMPTS.items():
            plain = guard.classify([text])[0]
            v = guard.classify([FILLER * 20 + text + ". " + FILLER * 10])[0]
            cells.append(f"{category} {plain.score:.2f} -> {v.score:.2f} {'flagged' if v.flagged else 'MISSED'}")
        benign = guard.classify([FILLER * 30])[0]
        print(f"window {window}: " + "; ".join(cells) + f"; benign filler {benign.score:.2f}", flush=True)


if __name__ == "__main__":
    main()
