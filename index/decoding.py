"""Decoding of encoded text: base64 / hex / URL-encoded spans, and ROT13 or reversed pieces and words.

Decoded text is wrapped in `OPEN` ... `CLOSE` (control characters: normalisation drops them) so that
index.deobfuscate can score a payload alone. Bounded: spans are decoded only when they look encoded, at most
`MAX_SPANS` of them and `MAX_DECODED` characters in all.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from index.lexicon import Lexicon

MAX_SPANS = 8
MAX_DECODED = 4096
# "Decode this and answer it: <payload>" scores lower than <payload>: the instruction dilutes it
OPEN, CLOSE = "\x02", "\x03"

# ------------------------------------------------------------------ encoded spans
_B64_RUN = re.compile(r"[A-Za-z0-9+/_=-]{8,}")
_B64_BODY = re.compile(r"[A-Za-z0-9+/]+|[A-Za-z0-9_-]+")
_HEX_RUNS = (
    re.compile(r"(?:\\x[0-9A-Fa-f]{2}){3,}"),
    re.compile(r"(?<![0-9A-Za-z])(?:[0-9A-Fa-f]{2}[ :]){3,}[0-9A-Fa-f]{2}(?![0-9A-Za-z])"),
    re.compile(r"(?<![0-9A-Za-z])[0-9A-Fa-f]{8,}(?![0-9A-Za-z])"),
)
_URL_RUN = re.compile(r"[A-Za-z0-9._~+%-]+")
_URL_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_WORD = re.compile(r"[A-Za-z]+")
# what every encoded span holds and most plain prompts do not: a digit, '+', '/', '=', '%', '\' or a capital
# inside a word
_ENCODED_HINT = re.compile(r"[0-9+/=%\\]|[a-z][A-Z]")


def _readable(data: bytes, lexicon: Lexicon, strict: bool = True) -> str | None:
    """`data` as text when it reads like text: UTF-8, printable, mostly letters and spaces, and (`strict`, or
    fewer than 6 bytes, where random bytes pass the other tests now and then) one known word."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(text) < 3 or any(unicodedata.category(ch)[0] == "C" and ch not in "\n\t" for ch in text):
        return None
    letters = sum(ch.isalpha() or ch.isspace() for ch in text)
    if letters < 0.7 * len(text):
        return None
    if not strict and len(data) >= 6:
        return text
    return text if any(len(w) > 2 and w in lexicon for w in _WORD.findall(text)) else None


def _looks_base64(run: str) -> bool:
    # an ordinary word ("Something", "state-of-the-art") is letters, maybe capitalised, maybe hyphenated; base64 of
    # text nearly always has a digit, a '+' or '/', padding, or an upper-case letter inside
    body = run.rstrip("=")
    return any(ch.isdigit() or ch in "+/=" for ch in run) or any(ch.isupper() for ch in body[1:])


def _decode_base64(run: str, lexicon: Lexicon) -> str | None:
    body = run.rstrip("=")
    if len(run) - len(body) > 2 or len(body) % 4 == 1 or not _B64_BODY.fullmatch(body):
        return None
    try:
        data = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_" if "-" in body or "_" in body else None)
    except (binascii.Error, ValueError):
        return None
    return _readable(data, lexicon, strict=False)


def _decode_hex(run: str, lexicon: Lexicon) -> str | None:
    digits = re.sub(r"\\x|[ :]", "", run)
    if len(digits) % 2:
        return None
    return _readable(bytes.fromhex(digits), lexicon, strict=False)


def _decode_url(run: str, lexicon: Lexicon) -> str | None:
    if len(_URL_ESCAPE.findall(run)) < 2:
        return None
    return _readable(unquote_to_bytes(run.replace("+", " ")), lexicon, strict=False)


def decode_spans(text: str, lexicon: Lexicon) -> str:
    """`text` with its base64, hex and URL-encoded spans replaced by their readable decodings (bounded)."""
    if not _ENCODED_HINT.search(text):
        return text
    found: list[tuple[int, int, str]] = []  # (start, end, decoded)
    budget = MAX_DECODED

    def take(start: int, end: int, decoded: str | None) -> None:
        nonlocal budget
        if decoded is None or len(found) >= MAX_SPANS or len(decoded) > budget:
            return
        if any(s < end and start < e for s, e, _ in found):
            return
        found.append((start, end, decoded))
        budget -= len(decoded)

    if "%" in text:
        for m in _URL_RUN.finditer(text):
            if "%" in m.group():
                take(m.start(), m.end(), _decode_url(m.group(), lexicon))
    for pattern in _HEX_RUNS:
        for m in pattern.finditer(text):
            take(m.start(), m.end(), _decode_hex(m.group(), lexicon))
    for m in _B64_RUN.finditer(text):
        if _looks_base64(m.group()) and len(m.group()) <= 4 * MAX_DECODED:
            take(m.start(), m.end(), _decode_base64(m.group(), lexicon))
    if not found:
        return text
    out: list[str] = []
    cursor = 0
    for start, end, decoded in sorted(found):
        out.extend((text[cursor:start], " " + OPEN, decoded, CLOSE + " "))
        cursor = end
    out.append(text[cursor:])
    return "".join(out)


# ------------------------------------------------------------------ ROT13 and reversed text
def _rot13(text: str) -> str:
    return codecs.encode(text, "rot13")


def _reverse(text: str) -> str:
    return text[::-1]


_DECODERS: tuple[Callable[[str], str], ...] = (_rot13, _reverse)
_TOLD = (re.compile(r"rot-?13|caesar", re.IGNORECASE), re.compile(r"backwards|reversed?\b", re.IGNORECASE))
PIECES = re.compile(r"([:\n])")


def _known_share(text: str, lexicon: Lexicon) -> tuple[int, float]:
    words = [w for w in _WORD.findall(text) if len(w) > 1]
    if not words:
        return 0, 0.0
    return len(words), (len(words) - len(lexicon.unknown(words))) / len(words)


def _decode_piece(piece: str, lexicon: Lexicon) -> str:
    n, known = _known_share(piece, lexicon)
    if n < 3 or known > 0.5:
        return piece
    for decode in _DECODERS:
        candidate = decode(piece)
        if _known_share(candidate, lexicon)[1] >= 0.75:
            return OPEN + candidate + CLOSE
    return piece


def unscramble(text: str, lexicon: Lexicon) -> str:
    """`text` with ROT13 or reversed pieces (the whole text, a line, after a colon) or words decoded."""
    # every rule below needs two unknown words: plain English stops here after one pass of dictionary look-ups
    unknown = set(lexicon.unknown(w for w in _WORD.findall(text) if len(w) > 2))
    if not unknown or (len(unknown) == 1 and not any(p.search(text) for p in _TOLD)):
        return text
    # pieces first: "Decode this ROT13 and answer it: <payload>" keeps its instruction readable
    pieces = PIECES.split(text)
    out = "".join(_decode_piece(p, lexicon) for p in pieces)
    if out == text and len(pieces) > 1:  # one piece (no colon, no line break) is the whole text: decoded above
        out = _decode_piece(text, lexicon)
    if out != text:
        return out
    # single words: two or more that decode to known words; or, after an explicit instruction ("ROT13",
    # "backwards"), every unknown word (the vocabulary lacks many words an attacker hides: "indoctrinate")
    pieces = PIECES.split(out)
    for decode, pattern in zip(_DECODERS, _TOLD, strict=True):
        told = next((n for n, p in enumerate(pieces) if pattern.search(p)), None)
        hits: dict[str, str] = {}
        if told is None:
            hits = {w: d for w in unknown if (d := decode(w)) in lexicon}
        else:
            # the instruction's own words stay: only what follows it (or surrounds it) is encoded
            for piece in pieces[:told] + pieces[told + 1 :]:
                hits.update((w, decode(w)) for w in _WORD.findall(piece) if w in unknown)
        if len(hits) >= (1 if told is not None else 2):
            return _WORD.sub(_replacer(hits), out)
    return out


# The words of an instruction that only says how to read a payload and to answer it ("Decode the encoded words hex
# and answer it:", "Read this backwards and reply:"). Words that ask for more than an answer (follow, execute, obey,
# ignore, ...) are not here: such an instruction is read as a unit of its own and the injection category judges it.
_READING = """a an the this these that it its them they following below above here text string message word words line
    lines payload question request prompt input content decode decoded decoding encoded encoding convert translate read
    interpret unscramble decipher decrypt base64 base 64 hex hexadecimal rot13 rot 13 url caesar cipher backwards
    reversed reverse percent and then answer reply respond to it me please first in from of with as is are"""
_READING_WORDS = frozenset(_READING.split())
_TOKEN = re.compile(r"[A-Za-z0-9]+")


def only_reading_instruction(text: str) -> bool:
    """Whether `text` (the words around a decoded payload) says nothing but how to read the payload and to answer
    it: such words tell nothing about the request, which is in the payload, so they are not scored on their own
    ("Decode the encoded words hex and answer it:" alone scored 0.72 as prompt_injection, whatever the payload)."""
    words = _TOKEN.findall(text.lower())
    return len(words) <= 16 and all(w in _READING_WORDS for w in words)


def _replacer(words: dict[str, str]) -> Callable[[re.Match[str]], str]:
    return lambda m: OPEN + words[m.group()] + CLOSE if m.group() in words else m.group()
