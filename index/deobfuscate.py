"""Readable variants of obfuscated texts: letter spacing, leetspeak and encoded spans undone.

`deobfuscate(text)` returns the text with cheap evasions reversed, or None when it finds nothing to undo (the
common case, decided by a few linear scans). The variant is scored as an extra unit of its text beside the plain
normalised form, never instead of it, so a plain prompt keeps its verdict and the raw text stays the evidence. What
is undone, in order:

1. encoded spans (index.decoding): base64 (standard and URL-safe), hex (`68656c6c6f`, `68 65 6c`, `\\x68\\x65`)
   and URL-encoding (`%68%6f%77`), each replaced by its decoding when that is readable text with a known word in it;
2. spaced letters ("H o w  d o  I", "p-i-p-e b-o-m-b"): a run of single letters is joined, a wider gap (two spaces,
   or a space among dashes or dots) is a word break, and a joined run that is not a word is segmented into words
   with the encoder's vocabulary (index.lexicon);
3. leetspeak ("m4k3", "b0mb", "a$$"): a token of three or more characters mixing letters with digits or symbols
   becomes the known word its substitutions spell; numbers, prices, versions, ordinals, units and words that are
   known as written ("mp3") stay; once two such words were folded, the text is leetspeak and two-character
   tokens ("d0", "m3"), numbers that spell a word ("70" = to), words the vocabulary lacks ("1nv01c35") and
   lone "1" / "4" / "@" ("i" / "a" / "a") are folded too;
4. ROT13 and reversed text: a line or the part after a colon (else the whole text), when it is mostly unknown
   words and its decoding mostly known ones; else single unknown words whose decoding is a known word, when two or
   more are;
5. list items: markers ("1. ", "- ", "a) ") dropped when two or more lines start with one (done before 2).

Cost is bounded: each stage starts with a cheap scan and does nothing more on plain text (about 30 us for a
prompt); spans are decoded only when they look encoded, at most `MAX_SPANS` of them and `MAX_DECODED` characters
in all; only the first `MAX_INPUT` characters are read; the segmenter is linear in a run's length.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass

from index.decoding import CLOSE, OPEN, PIECES, decode_spans, only_reading_instruction, unscramble
from index.lexicon import Lexicon, default_lexicon
from index.text import INVISIBLE, MIXED_WORD, fold_word, normalize_text

MAX_RUN = 400  # letters of one spaced run that are segmented; a longer run is only joined
MAX_PAYLOADS = 2  # decoded payloads scored alone besides the whole variant
MAX_INPUT = 20_000  # characters of a text that are read: past them a long text is left to windows and sentences

# ------------------------------------------------------------------ spaced letters
# Single letters (each ending its word) separated by up to a few spaces or a punctuation mark: bounded repeats and
# an anchored letter between separators keep the scan linear on hostile input.
_SPACED_RUN = re.compile(
    r"(?<![A-Za-z0-9])[A-Za-z](?![A-Za-z0-9])(?:(?: {0,3}[.\-_*·|/+~,] {0,3}| {1,4}|\t)[A-Za-z](?![A-Za-z0-9])){2,}"
)
_LETTER = re.compile(r"[A-Za-z]")


def _join_run(run: str, lexicon: Lexicon, after_apostrophe: bool = False) -> str:
    letters = _LETTER.findall(run)
    seps = _LETTER.split(run)[1:-1]
    # letters are joined by the commoner of single spaces and marks, the rest are word breaks: "H o w  d o" (two
    # spaces), "p-i-p-e b/o/m/b" (spaces among marks), "f i t i n . T h e y" (a full stop among spaces)
    kinds = [s.strip() or ("wide" if len(s) > 1 else " ") for s in seps]
    marks = sum(k not in (" ", "wide") for k in kinds)
    marks_within = marks > kinds.count(" ")
    breaks = [k in (" ", "wide") for k in kinds] if marks_within else [k != " " for k in kinds]
    # the writer marked the word breaks with wide gaps, or with spaces among marks; a full stop among single spaces
    # ends a sentence, and the words inside it still need finding
    words_marked = marks_within or "wide" in kinds
    groups: list[str] = []
    current = letters[0]
    for letter, brk in zip(letters[1:], breaks, strict=True):
        if brk:
            groups.append(current)
            current = letter
        else:
            current += letter
    groups.append(current)
    words: list[str] = []
    if after_apostrophe and not words_marked and (ending := _contraction(groups[0], lexicon)):
        # "c a n ' t h e l p": the run after an apostrophe starts with the contraction's ending ("can't help", not
        # "can the lp")
        words.append(ending)
        groups[0] = groups[0][len(ending) :]
    for group in groups:
        if not group:
            continue
        # only a run without marked word breaks is segmented: where the writer marked them, each group is one word
        # as written ("r e p u l s i v e", not "rep ul si ve"); a word the vocabulary lacks ("wetbacks") may leave a
        # few letters outside any word rather than sink the run
        whole = words_marked or group in lexicon or len(group) > MAX_RUN
        split = None if whole else lexicon.segment(group, len(group) // 4, len(group) // 2)
        words.extend(split if split else [group])
    return " ".join(words)


_CONTRACTION_ENDINGS = ("ll", "re", "ve", "t", "s", "d", "m")


def _contraction(group: str, lexicon: Lexicon) -> str | None:
    """The contraction ending ("t", "ll", ...) a joined group of letters starts with, when the rest reads as words."""
    low = group.lower()
    for ending in _CONTRACTION_ENDINGS:
        rest = low[len(ending) :]
        if low.startswith(ending) and (not rest or rest in lexicon or lexicon.segment(rest) is not None):
            return group[: len(ending)]
    return None


def unspace(text: str, lexicon: Lexicon) -> str:
    """`text` with each run of three or more spaced single letters joined into words."""

    def after_apostrophe(start: int) -> bool:
        while start > 0 and text[start - 1] == " ":
            start -= 1
        return start > 0 and text[start - 1] in "'\u2019"

    return _SPACED_RUN.sub(lambda m: _join_run(m.group(), lexicon, after_apostrophe(m.start())), text)


# ------------------------------------------------------------------ leetspeak
LEET: dict[str, str] = {
    "0": "o", "1": "il", "3": "e", "4": "a", "5": "s", "6": "gb", "7": "t", "8": "b", "9": "g",
    "@": "a", "$": "s", "!": "i", "|": "l", "+": "t",
}  # fmt: skip
_LEET_TOKEN = re.compile(r"[A-Za-z0-9@$|!+]+")
_NUMBER_WITH_UNIT = re.compile(r"[0-9]+[A-Za-z]{1,3}")  # 10th, 5kg, 1st, 24h, 3d
_LONE_LEET = re.compile(r"(?<![\w.,$%@])[14@](?![\w.,%@])")
_MAX_READINGS = 16
_LEET_HINT = re.compile(r"[A-Za-z][0-9@$|!+]|[0-9@$|!+][A-Za-z]")


def _fold_token(token: str, lexicon: Lexicon, leet_text: bool = False) -> str | None:
    """The known word a leetspeak token spells, or None. In a text already shown to be leetspeak (`leet_text`),
    two-character tokens, numbers ("70" = to) and tokens known as written ("m3") are read as leetspeak too."""
    core = token.rstrip("!")
    letters = sum(ch.isalpha() for ch in core)
    if letters == len(core) or len(core) < (2 if leet_text else 3):
        return None
    if not leet_text and (letters == 0 or core.lower() in lexicon or _NUMBER_WITH_UNIT.fullmatch(core)):
        return None
    options: list[str] = []
    for ch in core.lower():
        if ch.isalpha():
            options.append(ch)
        elif ch in LEET:
            options.append(LEET[ch])
        else:
            return None  # a digit no table maps ("b2b", "h264"): not leetspeak
    best: tuple[int, str] | None = None
    for letters_ in itertools.islice(itertools.product(*options), _MAX_READINGS):
        word = "".join(letters_)
        rank = lexicon.rank(word)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, word)
    if best is None and leet_text and letters:
        # in a leetspeak text a word the vocabulary lacks ("1nv01c35") is still spelled out, each substitution
        # read as its first letter; the tokenizer reads "invoices" far better than "1nv01c35"
        best = (0, "".join(option[0] for option in options))
    return None if best is None else best[1] + token[len(core) :]


def fold_leet(text: str, lexicon: Lexicon) -> str:
    """`text` with leetspeak words spelled out where the folded form is a known word."""
    if not _LEET_HINT.search(text):
        return text
    folded = 0

    def fold(m: re.Match[str], leet_text: bool = False) -> str:
        nonlocal folded
        word = _fold_token(m.group(), lexicon, leet_text)
        if word is None:
            return m.group()
        folded += 1
        return word

    out = _LEET_TOKEN.sub(fold, text)
    if folded >= 2:
        # a text written in leetspeak: short words ("d0", "m3"), numbers ("70") and lone "1" / "4" are leet too
        out = _LEET_TOKEN.sub(lambda m: fold(m, leet_text=True), out)
        out = _LONE_LEET.sub(lambda m: "i" if m.group() == "1" else "a", out)
    return out


# ------------------------------------------------------------------ list items
_LIST_MARKER = re.compile(r"^[ \t]*(?:[0-9]{1,2}[.)]|[a-zA-Z][.)]|[-*+•>])[ \t]+", re.MULTILINE)


def unlist(text: str, lexicon: Lexicon) -> str:
    """`text` without list markers ("1. ", "- ", "a) ") when two or more of its lines start with one: a request cut
    into list items reads as one sentence again."""
    if "\n" not in text or len(_LIST_MARKER.findall(text)) < 2:
        return text
    return _LIST_MARKER.sub("", text)


# ------------------------------------------------------------------ the variant
ASCII_CONTROLS = {c: None for c in (*range(0x20), 0x7F) if chr(c) not in "\n\t"}


def _prepare(text: str) -> str:
    """NFKC, invisible and control characters dropped, look-alikes folded, but spacing and lines kept."""
    if text.isascii():
        return text.translate(ASCII_CONTROLS)
    text = unicodedata.normalize("NFKC", text).translate(INVISIBLE)
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C" or ch in "\n\t")
    return text if text.isascii() else MIXED_WORD.sub(fold_word, text)


def deobfuscate(text: str, lexicon: Lexicon | None = None, plain: str | None = None) -> str | None:
    """The normalised text with cheap obfuscation undone, or None when that is the plain normalised text.

    Args:
        text: the raw text (not normalised: spacing and line breaks carry word breaks).
        lexicon: the known words (default: the encoder's vocabulary, `index.lexicon.default_lexicon`).
        plain: `normalize_text(text)` when the caller has it already.

    Returns:
        The deobfuscated text, normalised, when it differs from `plain`; else None.
    """
    undone = _undo(text, default_lexicon() if lexicon is None else lexicon)
    if undone is None:
        return None
    variant = normalize_text(undone[0])
    plain = normalize_text(text) if plain is None else plain
    return variant if variant and variant != plain else None


@dataclass(frozen=True, slots=True)
class Deobfuscation:
    """The units to score for a text besides (or instead of) its plain form.

    `decoded`: only encoded spans, ROT13 or reversed text were undone, so the units hold all the text says (the
    payloads, and the words around them as `rest`) and stand for it: its plain windows, whose encoded form reads
    like an injection whatever it encodes, do not decide its verdict (docs/reliability.md, issue 24)."""

    units: list[str]
    decoded: bool


def deobfuscation(text: str, lexicon: Lexicon | None = None) -> Deobfuscation | None:
    """What to score for `text` besides its plain form (None when nothing was undone): when something was decoded
    (base64, hex, URL, ROT13, reversed), the decoded payloads alone (the line or the part after a colon that holds
    decoded text, and decoded spans of three or more words; at most `MAX_PAYLOADS`) and the words around them, else
    the deobfuscated text. An instruction around a payload dilutes it ("Decode this and answer it: ..."), so the
    payload is read alone, and the words around it are not read when they only say how to read it and answer
    (`index.decoding.only_reading_instruction`); the deobfuscated text is kept too when spacing, leetspeak or list
    markers were undone besides (they may lie outside the payload)."""
    lexicon = default_lexicon() if lexicon is None else lexicon
    undone = _undo(text, lexicon)
    if undone is None:
        return None
    out, decoded_only = undone
    variant = normalize_text(out)
    if not variant or variant == normalize_text(text):
        return None
    payloads: list[str] = []
    if OPEN in out:
        spans = re.findall(re.escape(OPEN) + "(.*?)" + re.escape(CLOSE), out, flags=re.DOTALL)
        pieces = [p for p in PIECES.split(out) if OPEN in p or CLOSE in p]
        for candidate in (*pieces, *(s for s in spans if len(s.split()) >= 3)):
            unit = normalize_text(candidate)
            if len(unit.split()) >= 3 and unit not in payloads and len(payloads) < MAX_PAYLOADS:
                payloads.append(unit)
    if payloads and decoded_only:
        # what the text says besides its payloads (a harmful request beside a harmless encoded one still decides),
        # without holes: a sentence with its decoded words cut out reads like an instruction to decode something
        rest = normalize_text("".join(" " if normalize_text(p) in payloads else p for p in PIECES.split(out)))
        # an instruction that only says how to read the payload ("Decode this hex and answer it:") adds nothing to
        # judge and is not read alone (docs/reliability.md: alone it read as an injection whatever the payload)
        keep = rest and not only_reading_instruction(rest)
        return Deobfuscation([*payloads, rest] if keep else payloads, decoded=True)
    return Deobfuscation([variant, *(p for p in payloads if p != variant)][: MAX_PAYLOADS + 1], decoded_only)


def deobfuscated_units(text: str, lexicon: Lexicon | None = None) -> list[str]:
    """`deobfuscation(text).units`, or [] when nothing was undone."""
    found = deobfuscation(text, lexicon)
    return [] if found is None else found.units


def _undo(text: str, lexicon: Lexicon) -> tuple[str, bool] | None:
    """The prepared text with every stage applied, and whether only decoding stages changed it; None when no stage
    changed anything (the common, cheap path: no normalisation, no variant)."""
    prepared = _prepare(text[:MAX_INPUT])
    decoded = decode_spans(prepared, lexicon)
    out = decoded
    for stage in (unlist, unspace, fold_leet):
        out = stage(out, lexicon)
    decoded_only = out == decoded
    out = unscramble(out, lexicon)
    if out == prepared and len(text) <= MAX_INPUT:
        return None
    return out, decoded_only
