"""The one tokenisation every lexical metric uses.

Lexical diversity figures (distinct-n, self-BLEU) change a lot with the tokeniser, so a number is
only comparable to another computed with the same rule. This module is that rule, stated once:

1. Unicode NFKC normalisation, so full-width letters, ligatures and compatibility forms
   (e.g. "ｆｕｌｌ", "ﬁ") count as the letters they stand for.
2. Lower-casing (``str.lower``), so sentence-initial capitals do not make new n-grams.
3. Tokens, left to right:

   * each character of a script written without spaces between words (Han ideographs, Japanese
     kana, Bopomofo, Yi, Thai, Lao, Khmer, Myanmar) is one token on its own. A whitespace/``\\w+``
     rule would turn a whole Chinese or Thai sentence into one "word", so every sentence would be
     a distinct unigram and n-gram metrics would say nothing; one character per token is the
     usual, dictionary-free fallback (the same choice sacreBLEU's ``zh`` tokeniser makes for Han);
   * a run of word characters (Python ``\\w``: letters, digits, underscore, in any script) is one
     token. Combining marks (Unicode category M) count as word characters: Python's ``\\w`` leaves
     them out, which would cut Devanagari or Bengali words apart at every vowel sign;
   * any other non-space character (punctuation, symbols, emoji) is a token of one character.

Whitespace separates tokens and is dropped. No language-specific rules, no model, no download:
the same text always gives the same tokens on every machine.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

__all__ = ["NO_SPACE_RANGES", "tokenize", "tokenize_all"]

NO_SPACE_RANGES: tuple[tuple[int, int], ...] = (
    (0x0E00, 0x0E7F),  # Thai
    (0x0E80, 0x0EFF),  # Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x19E0, 0x19FF),  # Khmer symbols
    (0x2E80, 0x2FDF),  # CJK radicals supplement, Kangxi radicals
    (0x3005, 0x3007),  # ideographic iteration mark, closing mark, number zero
    (0x3021, 0x3029),  # Hangzhou numerals
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3100, 0x312F),  # Bopomofo
    (0x31A0, 0x31FF),  # Bopomofo extended, CJK strokes, Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK unified ideographs extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xA000, 0xA4CF),  # Yi syllables and radicals
    (0xA9E0, 0xA9FF),  # Myanmar extended-B
    (0xAA60, 0xAA7F),  # Myanmar extended-A
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0x1B000, 0x1B16F),  # Kana supplement / extended
    (0x20000, 0x2FA1F),  # CJK extensions B-F, compatibility supplement
    (0x30000, 0x323AF),  # CJK extensions G-H
)


def _class_body(ranges: Iterable[tuple[int, int]]) -> str:
    """Character-class body (no brackets) for inclusive code point ranges."""
    parts = []
    for lo, hi in ranges:
        parts.append(re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}")
    return "".join(parts)


def _mark_ranges() -> list[tuple[int, int]]:
    """Code point ranges of combining marks (categories Mn, Mc, Me) outside no-space scripts."""
    no_space = [(lo, hi) for lo, hi in NO_SPACE_RANGES]

    def in_no_space(cp: int) -> bool:
        return any(lo <= cp <= hi for lo, hi in no_space)

    ranges: list[tuple[int, int]] = []
    # Marks outside the BMP and SMP are only the variation selectors supplement; scanning all of
    # Unicode would cost ~0.3 s at first use for nothing.
    candidates = list(range(0x20000)) + list(range(0xE0100, min(0xE01EF, sys.maxunicode) + 1))
    for cp in candidates:
        if unicodedata.category(chr(cp))[0] == "M" and not in_no_space(cp):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    return ranges


@lru_cache(maxsize=1)
def _token_pattern() -> re.Pattern[str]:
    no_space = _class_body(NO_SPACE_RANGES)
    marks = _class_body(_mark_ranges())
    return re.compile(
        f"[{no_space}]"  # one character of a no-space script
        f"|(?:[^\\W{no_space}]|[{marks}])+"  # a run of word characters / combining marks
        f"|[^\\w\\s]"  # one punctuation or symbol character
    )


def tokenize(text: str) -> list[str]:
    """Tokens of ``text`` under the module's stated rule (see the module docstring)."""
    return _token_pattern().findall(unicodedata.normalize("NFKC", text).lower())


def tokenize_all(texts: Iterable[str]) -> list[list[str]]:
    """Tokenise many texts with the same rule."""
    pattern = _token_pattern()
    return [pattern.findall(unicodedata.normalize("NFKC", t).lower()) for t in texts]
