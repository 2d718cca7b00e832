"""Format RM: one ``<think>`` block then one ``<answer>`` block, minus a penalty for near-duplicate content.

The paper's Format RM checks the structure and penalises repeated/near-duplicate parts of the answer so that the
Length RM cannot be gamed by repeating paragraphs; its exact metric is not published. Ours (documented choice):

- *Units*: the answer's paragraphs (split on blank lines or newlines), and long paragraphs cut into windows of
  ``unit_words`` tokens, so one endless looping paragraph is caught too.
- *Near-duplicate unit*: a unit whose share of word n-grams already seen in *earlier* units is
  ``>= threshold``. N-grams are hashed (64-bit rolling hash in numpy), first occurrences found with one
  ``np.unique``, so the check is O(N log N) in the answer length, not pairwise over paragraphs.
- *Repetition rate*: the share of the answer's tokens lying in near-duplicate units.
- *Paraphrased repeats* (reworded padding keeps few 4-grams: with 30% of the words changed most 4-grams differ):
  each unit's set of content words (lower-cased words minus common function words; CJK character bigrams) is
  MinHashed (``datasketch``), and a unit is a near-duplicate when an LSH query finds an *earlier* unit whose exact
  Jaccard similarity is ``>= minhash_threshold``. ``repetition="both"`` (default) takes the larger of the two rates.
- Reward: ``1[valid structure] - penalty * repetition_rate`` (in ``[-penalty, 1]``).

Tokens are lower-cased English words/digit runs and single CJK characters.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import numpy as np
from rlcore.rewards import completion_text

from .prompts import extract_answer

__all__ = ["check_format", "compute_repetition_rate", "compute_paraphrase_repetition_rate", "FormatReward",
           "get_format_reward", "REPETITION_MODES"]

_MULT = np.uint64(0x100000001B3)  # FNV-style odd multiplier; uint64 arithmetic wraps (mod 2**64)
_TRAILING = ("<|user|>", "<|用户|>", "<|endoftext|>")


def check_format(text: str, think: bool = True) -> bool:
    r"""Whether a completion is exactly one think block then one answer block (``</answer>`` may be cut off).

    Think mode: ``<think>…</think>`` then ``<answer>…`` with only whitespace before, between and after (a stop
    marker such as ``<|user|>`` may follow). No-think mode: a single ``<answer>…`` and no think tags.

    Example:
        >>> check_format("<think>plan</think>\n<answer>text"), check_format("<answer>a</answer><answer>b")
        (True, False)
    """
    for m in _TRAILING:
        idx = text.find(m)
        if idx >= 0:
            text = text[:idx]
    counts = {t: text.count(t) for t in ("<think>", "</think>", "<answer>", "</answer>")}
    if counts["<answer>"] != 1 or counts["</answer>"] > 1:
        return False
    a_open = text.find("<answer>")
    if think:
        if counts["<think>"] != 1 or counts["</think>"] != 1:
            return False
        t_open, t_close = text.find("<think>"), text.find("</think>")
        if text[:t_open].strip() or not t_open < t_close < a_open or text[t_close + 8 : a_open].strip():
            return False
    elif counts["<think>"] or counts["</think>"] or text[:a_open].strip():
        return False
    a_close = text.find("</answer>")
    body = text[a_open + 8 :] if a_close < 0 else text[a_open + 8 : a_close]
    if a_close >= 0 and (a_close < a_open or text[a_close + 9 :].strip()):
        return False
    return not body.isspace() and bool(body)


_TOKEN = re.compile(r"[a-z0-9]+|[\u4e00-\u9fff]|\n")
_ASCII_KEEP = bytes(i if (chr(i).isascii() and chr(i).isalnum()) or i == 10 else 32 for i in range(256))
_NL_BYTES, _NL_STR = hash(b"\n"), hash("\n")


def _tokens(low: str) -> tuple[list, int]:
    """Tokens of a lower-cased answer, newlines kept as tokens, and the hash of the newline token."""
    if low.isascii():  # bytes.translate + split: C speed, same tokens as the regex
        kept = low.encode("ascii").translate(_ASCII_KEEP).replace(b"\n", b" \n ")
        return kept.split(b" "), _NL_BYTES
    return _TOKEN.findall(low), _NL_STR


def _units(answer: str, unit_words: int) -> tuple[np.ndarray, np.ndarray]:
    """Token hashes ``(N,)`` and each token's unit index ``(N,)``.

    Tokens: runs of ``[a-z0-9]`` after lower-casing, and single CJK characters; paragraphs end at newlines.
    """
    toks, nl_hash = _tokens(answer.lower())
    toks = [t for t in toks if t]  # empty strings from consecutive separators
    if not toks:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    hashes = np.fromiter(map(hash, toks), dtype=np.int64, count=len(toks))  # (N + newlines,)
    nl = hashes == nl_hash
    para = np.cumsum(nl)[~nl]  # (N,) paragraph of each token
    hashes = hashes[~nl]
    if hashes.size == 0:
        return hashes, np.zeros(0, dtype=np.int64)
    first = np.maximum.accumulate(np.where(np.r_[True, para[1:] != para[:-1]], np.arange(para.size), 0))
    pos = np.arange(para.size) - first  # position inside the paragraph
    key = para * (int(pos.max()) // unit_words + 1) + pos // unit_words  # increasing along the text
    unit_of = np.concatenate(([0], np.cumsum(key[1:] != key[:-1])))
    return hashes, unit_of


def compute_repetition_rate(answer: str, ngram: int = 4, threshold: float = 0.5, unit_words: int = 100) -> float:
    r"""Share of the answer's tokens that lie in near-duplicate units (see module docstring).

    Args:
        answer: the answer text.
        ngram: n-gram order ``n``.
        threshold: a unit is a near-duplicate when ``>= threshold`` of its n-grams occurred in earlier units.
        unit_words: window size for long paragraphs.

    Example:
        >>> p = "the cat sat on the mat and looked at the dog"
        >>> compute_repetition_rate(p + "\n\n" + p)  # 2nd paragraph (11 of 22 tokens) repeats the first
        0.5
        >>> compute_repetition_rate(p + "\n\nan entirely different second paragraph about the sea")
        0.0
    """
    if ngram < 1 or not 0 < threshold <= 1 or unit_words < 1:
        raise ValueError(f"need ngram >= 1, 0 < threshold <= 1, unit_words >= 1; got {ngram}, {threshold}, {unit_words}")
    tok, unit_of = _units(answer, unit_words)  # (N,), (N,)
    n_tok = tok.size
    if n_tok < ngram or unit_of[-1] == 0:
        return 0.0
    tok = tok.view(np.uint64)
    h = tok[: n_tok - ngram + 1]
    with np.errstate(over="ignore"):
        for k in range(1, ngram):  # combination of the n token hashes, mod 2**64
            h = h * _MULT ^ tok[k : n_tok - ngram + 1 + k]
    g_unit = unit_of[ngram - 1 :]  # (M,) unit of each n-gram's last token
    inside = unit_of[: n_tok - ngram + 1] == g_unit  # n-grams spanning a unit boundary are left out
    h, g_unit = h[inside], g_unit[inside]
    if h.size == 0:
        return 0.0
    _, first_idx, inverse = np.unique(h, return_index=True, return_inverse=True)
    seen_before = g_unit[first_idx[inverse]] < g_unit  # (M,) first occurrence lies in an earlier unit
    n_units = int(unit_of[-1]) + 1
    per_unit_grams = np.bincount(g_unit, minlength=n_units)
    per_unit_seen = np.bincount(g_unit, weights=seen_before, minlength=n_units)
    dup_unit = (per_unit_grams > 0) & (per_unit_seen >= threshold * np.maximum(per_unit_grams, 1))
    return float(dup_unit[unit_of].sum() / n_tok)


REPETITION_MODES = ("ngram", "minhash", "both")
_FUNCTION_WORDS = frozenset(
    "a an the and or but if then than so as of to in on at by for from with into onto over under about after before "
    "is are was were be been being am do does did have has had will would can could shall should may might must "
    "i you he she it we they me him her us them my your his its our their this that these those there here "
    "not no yes all any some each every more most such very also just only too up out off own same other "
    "what which who whom whose when where why how".split()
)


def _unit_shingles(answer: str, unit_words: int) -> list[tuple[set[str], int]]:
    """``(shingles, token count)`` per unit: paragraphs, long ones cut into windows of ``unit_words`` tokens.

    Shingles are the unit's content words (function words dropped) and bigrams of adjacent CJK characters.
    """
    units = []
    for para in answer.lower().split("\n"):
        toks = _TOKEN.findall(para)
        ascii_only = para.isascii()
        for s in range(0, len(toks), unit_words):
            window = toks[s : s + unit_words]
            if not window:
                continue
            if ascii_only:
                sh = set(window).difference(_FUNCTION_WORDS)
            else:
                sh = {t for t in window if t.isascii() and t not in _FUNCTION_WORDS}
                cjk = [t if not t.isascii() else "" for t in window]
                sh.update(a + b for a, b in zip(cjk, cjk[1:]) if a and b)
            units.append((sh, len(window)))
    return units


def _hash32(shingle: str) -> int:
    """32-bit hash of a shingle for MinHash.

    Python's string hash: fast, and stable within one process, which is all a within-answer comparison needs
    (datasketch's default SHA-1 costs ~5 us per shingle).
    """
    return hash(shingle) & 0xFFFFFFFF


@functools.lru_cache(maxsize=16)
def _lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """LSH bands x rows for ``threshold``, weighted to avoid misses (candidates are confirmed exactly).

    Computed once: datasketch integrates the collision curves on every index construction otherwise.
    """
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.05, 0.95))
    return lsh.b, lsh.r


def compute_paraphrase_repetition_rate(answer: str, threshold: float = 0.4, unit_words: int = 100,
                                       num_perm: int = 64, min_shingles: int = 5) -> float:
    r"""Share of the answer's tokens in units that paraphrase an earlier unit (content-word Jaccard, MinHash LSH).

    A unit with fewer than ``min_shingles`` content words is too short to judge and never counts. Candidates from
    the LSH index are confirmed with the exact Jaccard similarity of the two shingle sets, so there are no false
    positives; LSH may miss a pair just above ``threshold`` (64 permutations).

    Example:
        >>> a = "The lighthouse keeper watched storms roll across the grey northern sea every winter night"
        >>> b = "The lighthouse keeper observed storms moving across the grey northern ocean every winter night"
        >>> compute_paraphrase_repetition_rate(a + "\n\n" + b)  # b rewords a: its 14 of 28 tokens count
        0.5
    """
    import numpy as np
    from datasketch import MinHash

    if not 0 < threshold <= 1 or unit_words < 1:
        raise ValueError(f"need 0 < threshold <= 1 and unit_words >= 1, got {threshold}, {unit_words}")
    units = _unit_shingles(answer, unit_words)
    sets = [sh for sh, _ in units]
    judged = [i for i, sh in enumerate(sets) if len(sh) >= min_shingles]
    if len(judged) < 2:
        return 0.0
    sigs = np.stack([m.hashvalues for m in MinHash.bulk([sets[i] for i in judged], num_perm=num_perm,
                                                           hashfunc=_hash32)])  # (U, num_perm)
    n_bands, rows = _lsh_params(threshold, num_perm)
    bands = np.ascontiguousarray(sigs[:, : n_bands * rows].reshape(len(judged), n_bands, rows))  # (U, b, r)
    # LSH banding in plain dicts (datasketch's MinHashLSH index costs ~10 us per band operation, 10x this loop):
    # a unit's candidates are the earlier units that share one whole band; each is confirmed by exact Jaccard.
    buckets: list[dict[bytes, list[int]]] = [{} for _ in range(n_bands)]
    dup_tokens = 0
    for u, i in enumerate(judged):
        keys = [bands[u, k].tobytes() for k in range(n_bands)]
        seen: set[int] = set()
        for k, key in enumerate(keys):
            for j in buckets[k].get(key, ()):
                if j in seen:
                    continue
                seen.add(j)
                inter = len(sets[i] & sets[j])
                if inter >= threshold * (len(sets[i]) + len(sets[j]) - inter):
                    dup_tokens += units[i][1]
                    break
            else:
                continue
            break
        for k, key in enumerate(keys):
            buckets[k].setdefault(key, []).append(i)
    return dup_tokens / sum(n for _, n in units)


class FormatReward:
    """TRL reward: ``1[valid structure] - penalty * repetition_rate(answer)`` (see the module docstring)."""

    def __init__(self, think: bool = True, ngram: int = 4, threshold: float = 0.5, penalty: float = 1.0,
                 unit_words: int = 100, repetition: str = "both", minhash_threshold: float = 0.4):
        if penalty < 0:
            raise ValueError(f"penalty must be >= 0, got {penalty}")
        if repetition not in REPETITION_MODES:
            raise ValueError(f"repetition must be one of {REPETITION_MODES}, got {repetition!r}")
        compute_repetition_rate("", ngram, threshold, unit_words)  # validates the parameters
        compute_paraphrase_repetition_rate("", minhash_threshold, unit_words)
        self.think, self.ngram, self.threshold, self.penalty, self.unit_words = think, ngram, threshold, penalty, unit_words
        self.repetition, self.minhash_threshold = repetition, minhash_threshold
        self.__name__ = "format_reward"

    def repetition_rate(self, answer: str) -> float:
        """The repetition rate of ``answer`` under ``self.repetition``."""
        rates = []
        if self.repetition in ("ngram", "both"):
            rates.append(compute_repetition_rate(answer, self.ngram, self.threshold, self.unit_words))
        if self.repetition in ("minhash", "both"):
            rates.append(compute_paraphrase_repetition_rate(answer, self.minhash_threshold, self.unit_words))
        return max(rates)

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
        out: list[float | None] = []
        for c in completions:
            text = completion_text(c)
            answer = extract_answer(text) or ""
            out.append(float(check_format(text, self.think)) - self.penalty * self.repetition_rate(answer))
        return out


def get_format_reward(think: bool = True, ngram: int = 4, threshold: float = 0.5, penalty: float = 1.0,
                      unit_words: int = 100, repetition: str = "both", minhash_threshold: float = 0.4):
    """Factory for :class:`FormatReward` (picklable, ``__name__ == "format_reward"``).

    Example:
        >>> f = get_format_reward()
        >>> f(prompts=["q", "q"], completions=["<think>t</think><answer>Hello there", "Hello there"])
        [1.0, 0.0]
    """
    return FormatReward(think, ngram, threshold, penalty, unit_words, repetition, minhash_threshold)
