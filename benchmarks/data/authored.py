"""Prompt-injection rows written by this project (authored.toml): attacks composed from an override, a goal and the
way the text reaches the model, and benign prompts built from the same trigger words. Deterministic: every row's
parts come from a Random seeded with the row's index, so the rows never depend on the datasets folder."""

from __future__ import annotations

import random
import tomllib
from pathlib import Path
from typing import Any

from benchmarks.data.injection import seeded
from benchmarks.data.sources import Rows, Src
from index import SAFE

TABLES: dict[str, Any] = tomllib.loads(Path(__file__).with_name("authored.toml").read_text(encoding="utf-8"))


def _sentence(*parts: str) -> str:
    """Join parts with single spaces, capitalise the first letter of a lower-case goal after a full stop."""
    out = ""
    for part in filter(None, parts):
        if out and out[-1] in ".:!?>" and part[0].islower():
            part = part[0].upper() + part[1:]
        out = f"{out} {part}" if out else part
    return out


def attack(rng: random.Random) -> str:
    goal = rng.choice(TABLES["goals"])
    override = rng.choice(TABLES["overrides"])
    connector = "" if override.endswith((",", ":")) else rng.choice(TABLES["connectors"])
    frame: str = rng.choice(TABLES["frames"])
    return frame.format(attack=_sentence(override, connector, goal) + ".")


def lookalike(rng: random.Random) -> str:
    if rng.random() < 0.6:
        text = _sentence(rng.choice(TABLES["revisions"]), rng.choice(TABLES["benign_goals"])) + "."
        return rng.choice(("{attack}", "{attack}", "Hi! {attack}", "Thanks for the help so far. {attack}")).format(
            attack=text
        )
    carrier: str = rng.choice([f for f in TABLES["frames"] if f != "{attack}"])
    return carrier.format(attack=rng.choice(TABLES["fillers"]))


def authored(root: Path, src: Src) -> Rows:
    """`root` (the datasets folder of a staged source) is not read: every part is in authored.toml."""
    del root
    attacks = src.part("attacks")
    for i in range(TABLES["attacks"]):
        yield attacks.row(attack(seeded("authored-attack", str(i))), "prompt_injection")
    benign = src.part("lookalikes", family="injection-authored-lookalike")
    yield from (benign.row(q, SAFE) for q in TABLES["questions"])
    n = TABLES["lookalikes"] - len(TABLES["questions"])
    yield from (benign.row(lookalike(seeded("authored-lookalike", str(i))), SAFE) for i in range(n))
