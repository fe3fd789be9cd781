"""Readers of the shared datasets' safety sources: each maps one folder's rows to candidates under the label tables."""

from __future__ import annotations

import ast
import csv
import html
import io
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from benchmarks.data import injection
from benchmarks.data.labels import (
    AART_CRIMES,
    COCONOT_UNSAFE,
    HARMFUL,
    JIGSAW_FLAGS,
    LABEL_MAP,
    RTP_LEXICON,
    TOXIC,
    Target,
    keyword_category,
    keyword_rule,
    label_map,
)
from benchmarks.data.sources import (
    GUARDREASONER_PARTS,
    Rows,
    Src,
    read_csv,
    read_instructions,
    read_json,
    read_jsonl,
)
from index import SAFE

HARMFUL_FAMILY = "harmful-instructions"


def _aegis(root: Path, src: Src) -> Rows:
    labels = LABEL_MAP["aegis2-train-unsafe-sample"]
    for rec in read_csv(root / "aegis_900.csv"):
        yield src.row(rec["prompt"], labels[rec["category"]])


def _catqa(root: Path, src: Src) -> Rows:
    labels = LABEL_MAP["catqa"]
    for cat, subs in read_json(root / "catqa_english.json").items():
        for sub, questions in subs.items():
            key = f"{cat}/{sub.rstrip(':')}"
            target = labels[key] if key in labels else labels[f"{cat}/*"]
            yield from (src.row(q, target) for q in questions)


def _harmbench(root: Path, src: Src) -> Rows:
    labels = LABEL_MAP["harmbench"]
    for rec in read_csv(root / "harmbench_behaviors_text_all.csv"):
        yield src.row(rec["Behavior"], labels[rec["SemanticCategory"]])


def _strongreject(root: Path, src: Src) -> Rows:
    labels = LABEL_MAP["strongreject"]
    for rec in read_csv(root / "strongreject.csv"):
        yield src.row(rec["forbidden_prompt"], labels[rec["category"]])


def _jailbreakbench(root: Path, src: Src) -> Rows:
    labels = LABEL_MAP["jailbreakbench"]
    for rec in read_csv(root / "jailbreakbench.csv"):
        yield src.part("harmful").row(rec["Goal"], labels[rec["Category"]])
    benign = src.part("benign", family="lookalike")
    for item in read_json(root / "jailbreakbench_harmful_benign_200.json"):
        if item["label"] == "safe":
            yield benign.row(item["text"], SAFE)


_ABOUT_ASSISTANT = re.compile(r"\byour?\b", re.IGNORECASE)


def _dna_target(intents: list[str], text: str) -> Target:
    labels = LABEL_MAP["do-not-answer"]
    for code in intents:  # upstream lists the main intent first
        if code.startswith("S003"):
            return labels["S003* (illegal activities)"]
        if code.startswith("S004"):
            return "sexual"
        if code in ("S005bully", "S005hate", "S005profanity", "S006sh", "S006threat", "S006violence", "S008spam"):
            return labels[code]
        if code in ("S006instructions", "S006items"):
            return labels["S006instructions / S006items"]
        if code == "S007":
            return "hate"
        if code.startswith("S008"):
            return "malware_cyber"
        if code in ("S009cred", "S009personal") and not _ABOUT_ASSISTANT.search(text):
            return "pii_privacy"
    return None  # false-premise, advice-seeking and chatbot-persona questions are not unsafe for a guardrail


def _do_not_answer(root: Path, src: Src) -> Rows:
    for path in sorted(root.glob("*.jsonl")):
        part = src.part(path.stem)
        for rec in read_jsonl(path):
            text = str(rec["prompt"])
            yield part.row(text, _dna_target(list(rec["intents"]), text))


def _aart(root: Path, src: Src) -> Rows:
    for rec in read_csv(root / "aart-v1-20231117.csv"):
        yield src.row(rec["prompt"], AART_CRIMES.get(rec["crime"], "other_unsafe"))


BEAVERTAILS_FLAGS = label_map("duoguard-eval/beavertails")
XSAFETY = keyword_rule(None)  # keyword hits only: its health / ethics scenarios read as benign questions


def _duoguard(root: Path, src: Src) -> Rows:
    xsafety, rtplx = src.part("xsafety"), src.part("rtp-lx", family="toxicity")
    for item in read_json(root / "XSafety.json"):
        yield xsafety.row(item["prompt"], XSAFETY if item["class"] == 1 else SAFE)
    for item in read_json(root / "rtp_lx_prompt.json"):
        yield rtplx.row(item["prompt"], TOXIC if item["class"] == 1 else SAFE)
    # BeaverTails labels the prompt+response pair: only unsafe pairs say something about the prompt, and one prompt
    # can carry several pairs, so flags are pooled per prompt before the first flag (in priority order) decides.
    flags: dict[str, set[str]] = defaultdict(set)
    for rec in read_jsonl(root / "beavertail_test.jsonl"):
        if rec["is_safe"] is False:
            flags[str(rec["prompt"])].update(k for k, v in rec["category"].items() if v)
    beavertails = src.part("beavertails", license="CC-BY-NC (BeaverTails)", noncommercial=True)
    for prompt, on in flags.items():
        flag = next((f for f in BEAVERTAILS_FLAGS if f in on), None)
        yield beavertails.row(prompt, BEAVERTAILS_FLAGS[flag] if flag else TOXIC)


def _rtp_challenging(root: Path, src: Src) -> Rows:
    labels = label_map("rtp-challenging-subsets")
    for path in sorted(root.glob("rtp_*.txt")):
        subset = path.stem.removeprefix("rtp_")
        part = src.part(subset)
        for line in path.read_text(encoding="utf-8").splitlines():
            # The subset names describe the toxic *continuations*; most prefixes are neutral news text, so only
            # prefixes that are themselves toxic on the keyword lexicon are kept as exemplars.
            if keyword_category(line, RTP_LEXICON) is not None:
                yield part.row(line, labels[subset])


def _toxigen(root: Path, src: Src) -> Rows:
    for path in sorted(root.glob("*.txt")):
        target = "hate" if path.name.startswith("hate_") else SAFE
        seen: set[str] = set()
        for line in path.read_text(encoding="utf-8").splitlines():
            # Each line is a few-shot prompt: statements joined by a literal "\n-".
            for piece in line.split("\\n"):
                statement = piece.strip().lstrip("-").strip()
                if statement and statement not in seen:
                    seen.add(statement)
                    yield src.row(statement, target)


def _davidson(root: Path, src: Src) -> Rows:
    classes = {"0": "hate", "1": "profanity", "2": SAFE}
    for rec in read_csv(root / "labeled_data.csv"):
        yield src.row(html.unescape(rec["tweet"]), classes[rec["class"]])


def _olid(root: Path, src: Src) -> Rows:
    labels = LABEL_MAP["olid"]
    for rec in read_csv(root / "olid-training-v1.0.tsv", delimiter="\t"):
        a, b, c = rec["subtask_a"], rec["subtask_b"], rec["subtask_c"]
        key = "NOT" if a == "NOT" else ("OFF/UNT" if b == "UNT" else f"OFF/TIN/{c}")
        yield src.row(html.unescape(rec["tweet"]), labels[key])


def _hatecheck(root: Path, src: Src) -> Rows:
    for rec in read_csv(root / "test_suite_cases.csv"):
        yield src.row(rec["test_case"], "hate" if rec["label_gold"] == "hateful" else SAFE)


def _jigsaw(root: Path, src: Src) -> Rows:
    for name in ("train.csv", "test_examples.csv"):
        for rec in read_csv(root / name):
            flag = next((f for f in JIGSAW_FLAGS if rec[f] == "1"), None)
            yield src.row(rec["comment_text"], JIGSAW_FLAGS[flag] if flag else SAFE)


def _cssrs(root: Path, src: Src) -> Rows:
    levels = {"Ideation": "self_harm", "Behavior": "self_harm", "Attempt": "self_harm", "Supportive": SAFE}
    for rec in read_csv(root / "500_Reddit_users_posts_labels.csv"):
        try:  # each cell is a Python list literal of one user's posts
            posts = ast.literal_eval(rec["Post"])
        except (ValueError, SyntaxError):
            posts = [rec["Post"]]
        yield src.row("\n".join(str(p) for p in posts), levels.get(rec["Label"]))


def _suicide_detection(root: Path, src: Src) -> Rows:
    for rec in read_csv(root / "Suicide_Detection.csv"):
        yield src.row(rec["text"], "self_harm" if rec["class"] == "suicide" else SAFE)


def _toxicchat(root: Path, src: Src) -> Rows:
    for item in read_json(root / "toxic_chat_train.json")["instances"]:
        toxic = item["annotations"]["toxicity"]["majority_human"] == "1"
        jailbreak = item["annotations"]["jailbreaking"]["majority_human"] == "1"
        yield src.row(item["instance"], "jailbreak" if jailbreak else (TOXIC if toxic else SAFE))


def _guardreasoner(root: Path, src: Src) -> Rows:
    for item in read_json(root / "guardreasoner_test_5k.json"):
        name, license_, noncommercial = GUARDREASONER_PARTS[item["source"]]
        part = src.part(name, license=license_, noncommercial=noncommercial)
        yield part.row(item["prompt"], HARMFUL if item["label"] == "harmful" else SAFE)


def _safety_tuned_llamas(root: Path, src: Src) -> Rows:
    files: tuple[tuple[str, Target, str], ...] = (
        ("I-CoNa", "hate", "harmful-instructions"),
        ("I-Controversial", "hate", "harmful-instructions"),
        ("I-MaliciousInstructions", HARMFUL, "harmful-instructions"),
        ("Q-Harm", keyword_rule(None), "harmful-instructions"),
        ("I-PhysicalSafetyUnsafe", "other_unsafe", "harmful-instructions"),
        ("safety_only_data_Instructions", HARMFUL, "harmful-instructions"),
        ("I-PhysicalSafetySafe", SAFE, "lookalike"),
        ("I-Alpaca", SAFE, "benign-instructions"),
    )
    for stem, target, family in files:
        part = src.part(stem.removeprefix("I-").removesuffix("_data_Instructions"), family=family)
        yield from (part.row(text, target) for text in read_instructions(root / f"{stem}.json"))


def _refusal_direction(root: Path, src: Src) -> Rows:
    harmful = src.part("harmful", license="Apache-2.0")
    harmless = src.part("harmless", license="CC-BY-NC-4.0 (Alpaca)", noncommercial=True, family="benign-instructions")
    for split in ("train", "val", "test"):
        yield from (harmful.row(t, HARMFUL) for t in read_instructions(root / "splits" / f"harmful_{split}.json"))
        yield from (harmless.row(t, SAFE) for t in read_instructions(root / "splits" / f"harmless_{split}.json"))


def _advbench(root: Path, src: Src) -> Rows:
    yield from (src.row(rec["goal"], HARMFUL) for rec in read_csv(root / "advbench.csv"))


def _lines(root: Path, src: Src) -> Rows:
    for path in sorted(root.glob("*.txt")):
        yield from (src.row(line, HARMFUL) for line in path.read_text(encoding="utf-8").splitlines())


def _json_list_harmful(root: Path, src: Src) -> Rows:
    for path in sorted(root.glob("*.json")):
        data = read_json(path)
        part = src.part(path.stem) if src.source.startswith("harmfulqa") else src
        if isinstance(data, dict):  # HarmfulQA: topic -> subtopic -> questions
            texts = [q for subs in data.values() for qs in subs.values() for q in qs]
        else:
            texts = [d["text"] if isinstance(d, dict) else d for d in data]
        target = TOXIC if path.stem == "harmfulqa" else HARMFUL  # its how-to template says nothing about crime
        yield from (part.row(t, target) for t in texts)


def _jailbreak_templates(root: Path, src: Src) -> Rows:
    for path in sorted(root.iterdir()):
        if path.suffix == ".json":
            yield from (src.row(t, "jailbreak") for t in read_json(path))
        elif path.suffix == ".csv":
            yield from (src.row(rec["prompt"], "jailbreak") for rec in read_csv(path))


def _lewd(root: Path, src: Src) -> Rows:
    target = LABEL_MAP["lmsys-chat-lewd-prompts"]["(all)"]
    yield from (src.row(item["prompt"], target) for item in read_json(root / "lmsys-chat-lewd-filter.prompts.json"))


def _benign(root: Path, src: Src) -> Rows:
    """Every benign-prompt folder: each file format is recognised by its fields."""
    for path in sorted(root.iterdir()):
        if path.suffix == ".jsonl":
            for rec in read_jsonl(path):
                if "turns" in rec:  # mt-bench / arena-hard: later turns depend on the first, keep the first only
                    turn = rec["turns"][0]
                    text = turn["content"] if isinstance(turn, dict) else turn
                else:
                    text = rec.get("instruction", rec.get("prompt"))
                yield src.row(text, SAFE)
        elif path.suffix == ".json":
            yield from (src.row(item["instruction"], SAFE) for item in read_json(path))
        elif path.suffix == ".csv":
            yield from (src.row(rec["prompt"], SAFE) for rec in read_csv(path))


def _coconot(root: Path, src: Src) -> Rows:
    for name in ("contrast_eval", "pref"):
        part = src.part(name)
        yield from (part.row(rec["prompt"], SAFE) for rec in read_jsonl(root / f"coconot_{name}.jsonl"))
    part = src.part("eval")
    for rec in read_jsonl(root / "coconot_eval.jsonl"):
        concern = rec["category"] == "Requests with safety concerns"
        yield part.row(rec["prompt"], COCONOT_UNSAFE[str(rec["subcategory"])] if concern else SAFE)


def _benign_prompts(root: Path, src: Src) -> Rows:
    """NotInject: benign prompts built around injection trigger words ("ignore", "bypass", ...)."""
    for path in sorted(root.glob("*.json")):
        yield from (src.row(item["prompt"], SAFE) for item in read_json(path))


def _phtest(root: Path, src: Src) -> Rows:
    # "controversial" rows are harmful or not depending on context: neither clean negatives nor positives; left out
    for rec in read_csv(root / "dataset_v0.1.csv"):
        if rec["Harmfulness"] == "harmless":
            yield src.row(rec["Request"], SAFE)


def _wildjailbreak(root: Path, src: Src) -> Rows:
    # quoted TSV (texts hold tabs and newlines inside quotes), unlike OLID's
    text = (root / "eval.tsv").read_text(encoding="utf-8")
    for rec in csv.DictReader(io.StringIO(text), delimiter="\t"):
        yield src.row(rec["adversarial"], "jailbreak" if rec["label"] == "1" else SAFE)


def _jailbreakv(root: Path, src: Src) -> Rows:
    yield from (src.row(rec["prompt"], "jailbreak") for rec in read_csv(root / "jailbreak_600.csv"))


Reader = Callable[[Path, Src], Rows]
READERS: dict[str, Reader] = {
    "aegis": _aegis,
    "catqa": _catqa,
    "harmbench": _harmbench,
    "strongreject": _strongreject,
    "jailbreakbench": _jailbreakbench,
    "do_not_answer": _do_not_answer,
    "aart": _aart,
    "duoguard": _duoguard,
    "rtp_challenging": _rtp_challenging,
    "toxigen": _toxigen,
    "davidson": _davidson,
    "olid": _olid,
    "hatecheck": _hatecheck,
    "jigsaw": _jigsaw,
    "cssrs": _cssrs,
    "suicide_detection": _suicide_detection,
    "toxicchat": _toxicchat,
    "guardreasoner": _guardreasoner,
    "safety_tuned_llamas": _safety_tuned_llamas,
    "refusal_direction": _refusal_direction,
    "advbench": _advbench,
    "lines": _lines,
    "json_list_harmful": _json_list_harmful,
    "jailbreak_templates": _jailbreak_templates,
    "lewd": _lewd,
    "benign": _benign,
    "coconot": _coconot,
    "benign_prompts": _benign_prompts,
    "phtest": _phtest,
    "wildjailbreak": _wildjailbreak,
    "jailbreakv": _jailbreakv,
    "purplellama": injection.purplellama,
    "pallms": injection.pallms,
    "spikee": injection.spikee,
    "bipia_attacks": injection.bipia_attacks,
    "garak": injection.garak,
}
