"""Dual-granularity test-time user-based scaling: Ind-n, Pro-k, their fusion and the tie rule.

* Individual level (Ind-n): n chains for the same input (T = 1.0); ``self_i`` = mean score of response i over the
  parsable chains.
* Prototype level (Pro-k): embed PART 1 of the first parsed chain, take the nearest prototype, its k most similar
  members; each neighbour re-scores the *current* pair with *its own* preference history (one chain each);
  ``nb_i`` = mean over parsable neighbour chains.
* Cached prototype criteria (``indN+cproK``, beyond the paper): K chains of one prompt carrying the nearest
  prototype's cached criteria instead of K neighbour prompts (see :class:`TestTimeScaler`).
* Fusion: ``final_i = (c_s self_i + c_n nb_i) / (c_s + c_n)`` over the sides that exist; response 1 wins iff
  ``final_1 >= final_2`` (the released scaling script's tie rule).

The batched path makes two ``generate`` calls per batch of pairs (all Ind chains, then all neighbour re-scorings);
``batched=False`` generates one chain at a time (the baseline of ``tools/bench/p_genrm.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .chain_parser import ChainSample, extract_analysis
from .evaluation_chain import ScoreRequest
from .prototypes import PrototypeIndex

__all__ = ["PRESETS", "get_preset", "preset_pro_mode", "compute_individual_scores", "compute_fused_scores", "decide",
           "ScaledResult", "TestTimeScaler"]

PRESETS: dict[str, tuple[int, int]] = {  # the paper's budgets; any indN[+proK | +cproK] is accepted
    "ind1": (1, 0),
    "ind8": (8, 0),
    "ind16": (16, 0),
    "ind32": (32, 0),
    "ind8+pro4": (8, 4),
    "ind16+pro8": (16, 8),
    "ind2+cpro2": (2, 2),
}
_PRESET = re.compile(r"ind([1-9][0-9]{0,3})(?:\+(c?)pro([0-9]{1,4}))?")


def get_preset(name: str) -> tuple[int, int]:
    """``(ind_n, pro_k)`` of a budget ``indN``, ``indN+proK`` (paper) or ``indN+cproK`` (cached prototype criteria).

    Raises:
        ValueError: a name that is not of that form (the message lists the paper's presets).
    """
    m = _PRESET.fullmatch(str(name))
    if m is None:
        raise ValueError(f"unknown scaling preset {name!r}: use indN, indN+proK or indN+cproK, e.g. {sorted(PRESETS)}")
    return int(m.group(1)), int(m.group(3) or 0)


def preset_pro_mode(name: str) -> str:
    """``"cached"`` for ``indN+cproK`` budgets, else ``"neighbours"``."""
    get_preset(name)
    return "cached" if "+cpro" in name else "neighbours"


def compute_individual_scores(chains: list[ChainSample]) -> tuple[float, float, int] | None:
    """Mean (original-order) final scores over the parsable chains: ``self_i = mean_c score_{c,i}``.

    Returns ``(self_1, self_2, n_used)``, or None when no chain parsed (the side is then absent, not guessed).

    Example:
        >>> from p_genrm.chain_parser import ChainSample
        >>> ok = ChainSample("", (0, 1), scores=(6.0, 4.0)); ok.parsed = True
        >>> bad = ChainSample("", (0, 1), error="bad_json")
        >>> compute_individual_scores([ok, bad])
        (6.0, 4.0, 1)
    """
    used = [c.scores for c in chains if c.parsed is not None and c.scores is not None]
    if not used:
        return None
    arr = np.asarray(used, dtype=np.float64)  # (n_used, 2)
    return float(arr[:, 0].mean()), float(arr[:, 1].mean()), len(used)


def compute_fused_scores(self_scores: tuple[float, float] | None, nb_scores: tuple[float, float] | None,
                         coef_self: float = 0.5, coef_neighbors: float = 0.5) -> tuple[float, float] | None:
    """``final_i = (c_s self_i + c_n nb_i) / (c_s + c_n)`` over the sides present (spec "Aggregation").

    Example:
        >>> compute_fused_scores((6.0, 4.0), (5.0, 7.0))  # (0.5*6 + 0.5*5, 0.5*4 + 0.5*7)
        (5.5, 5.5)
        >>> compute_fused_scores(None, (5.0, 7.0))
        (5.0, 7.0)
    """
    sides = [(c, s) for c, s in ((coef_self, self_scores), (coef_neighbors, nb_scores)) if s is not None and c > 0]
    if not sides:
        return None
    total = sum(c for c, _ in sides)
    return (sum(c * s[0] for c, s in sides) / total, sum(c * s[1] for c, s in sides) / total)


def decide(final: tuple[float, float] | None, tie_rule: str = "first") -> int | None:
    """Index (0 or 1) of the preferred response, None without scores.

    ``tie_rule`` "first" picks response 1 on ties (released scaling script); "none" returns None on ties (the
    released batch evaluator drops them).
    """
    if final is None:
        return None
    if final[0] == final[1]:
        if tie_rule not in ("first", "none"):
            raise ValueError(f"tie_rule must be 'first' or 'none', got {tie_rule!r}")
        return 0 if tie_rule == "first" else None
    return 0 if final[0] > final[1] else 1


@dataclass
class ScaledResult:
    """Scores of one pair after scaling, in the caller's order, with what each side used."""

    self_scores: tuple[float, float] | None
    nb_scores: tuple[float, float] | None
    final: tuple[float, float] | None
    preferred: int | None
    n_self: int
    n_neighbors: int
    neighbors_requested: int
    prototype: int | None
    pro_skipped: str | None = None


class TestTimeScaler:
    """Ind-n + Pro-k scoring of pairs with a :class:`~p_genrm.scoring.GenRMScorer`.

    Args:
        scorer: a GenRMScorer (or anything with ``sample_chains(requests, n)``).
        index: prototypes and members (needed when ``pro_k > 0``).
        embedder: ``texts -> (N, d)`` unit vectors, the encoder the index was built with.
        ind_n, pro_k: budget (see :data:`PRESETS`).
        coef_self, coef_neighbors: fusion weights c_s, c_n (0.5 / 0.5 released).
        tie_rule: see :func:`decide`.
        exclude_self: skip the querying user's own members among the neighbours.
        pro_mode: ``"neighbours"`` (paper): k neighbours each re-score the pair with their own history, one chain
            each. ``"cached"``: the nearest prototype's cached criteria (PART 1 of its 4 most central members, built
            once and reused for every user) join the user's own evidence in one prompt that is sampled k times
            (same prompt: one shared prefill), so Ind-n + Pro-k costs n + k chains with no per-neighbour prompts.
    """

    __test__ = False  # not a pytest class despite the name

    def __init__(self, scorer: Any, index: PrototypeIndex | None = None, embedder: Any = None, ind_n: int = 16,
                 pro_k: int = 8, coef_self: float = 0.5, coef_neighbors: float = 0.5, tie_rule: str = "first",
                 exclude_self: bool = True, pro_mode: str = "neighbours"):
        if ind_n < 1:
            raise ValueError(f"ind_n must be >= 1 (Pro-k needs a first chain to find the prototype), got {ind_n}")
        if pro_k < 0:
            raise ValueError(f"pro_k must be >= 0, got {pro_k}")
        if pro_k > 0 and (index is None or embedder is None):
            raise ValueError("pro_k > 0 needs a prototype index and an embedder")
        self.scorer, self.index, self.embedder = scorer, index, embedder
        self.ind_n, self.pro_k = ind_n, pro_k
        self.coef_self, self.coef_neighbors, self.tie_rule = coef_self, coef_neighbors, tie_rule
        self.exclude_self = exclude_self
        if pro_mode not in ("neighbours", "cached"):
            raise ValueError(f"pro_mode must be 'neighbours' or 'cached', got {pro_mode!r}")
        self.pro_mode = pro_mode
        self.cards = index.prototype_criteria() if pro_k > 0 and pro_mode == "cached" else None

    def _sample(self, requests: list[ScoreRequest], n: int, batched: bool) -> list[list[ChainSample]]:
        if batched:
            return self.scorer.sample_chains(requests, n)
        return [sum((self.scorer.sample_chains([r], 1)[0] for _ in range(n)), []) for r in requests]

    def score(self, requests: list[ScoreRequest], batched: bool = True) -> list[ScaledResult]:
        """Scale-score every request (responses in the caller's order)."""
        ind = self._sample(requests, self.ind_n, batched)
        self_scores = [compute_individual_scores(c) for c in ind]
        nb_chains: list[list[ChainSample]] = [[] for _ in requests]
        protos: list[int | None] = [None] * len(requests)
        skipped: list[str | None] = [None] * len(requests)
        requested = [0] * len(requests)
        if self.pro_k > 0:
            anchors = []
            for i, chains in enumerate(ind):
                first = next((c for c in chains if c.parsed is not None), None)
                text = first.parsed.analysis if first is not None else None
                if text is None:  # PART 1 of an otherwise broken chain is still a usable anchor
                    text = next((a for a in (extract_analysis(c.text) for c in chains) if a), None)
                if text is None:
                    skipped[i] = "no_analysis"
                else:
                    anchors.append((i, text))
            if anchors and self.pro_mode == "cached":
                emb = self.embedder([t for _, t in anchors])
                pro_reqs, owners = [], []
                for (i, _), e in zip(anchors, emb):
                    protos[i], requested[i] = self.index.nearest_prototype(e), self.pro_k
                    card = self.cards[protos[i]]
                    if card is None:
                        skipped[i] = "empty_prototype"
                        continue
                    pro_reqs.append(replace(requests[i], prototype_criteria=card))
                    owners.append(i)
                if pro_reqs:
                    for i, chains in zip(owners, self._sample(pro_reqs, self.pro_k, batched)):
                        nb_chains[i].extend(chains)
            elif anchors:
                emb = self.embedder([t for _, t in anchors])
                excl = [requests[i].user_id if self.exclude_self else None for i, _ in anchors]
                found = self.index.search(emb, self.pro_k, excl)
                pro_reqs, owners = [], []
                for (i, _), nb in zip(anchors, found):
                    protos[i], requested[i] = nb.prototype, self.pro_k
                    if not nb.members:
                        skipped[i] = "empty_prototype"
                    for m in nb.members:
                        pro_reqs.append(replace(requests[i], history=m.history))
                        owners.append(i)
                if pro_reqs:
                    for i, chains in zip(owners, self._sample(pro_reqs, 1, batched)):
                        nb_chains[i].extend(chains)
        out = []
        for i in range(len(requests)):
            s, nb = self_scores[i], compute_individual_scores(nb_chains[i]) if nb_chains[i] else None
            final = compute_fused_scores(s[:2] if s else None, nb[:2] if nb else None,
                                         self.coef_self, self.coef_neighbors)
            out.append(ScaledResult(
                self_scores=s[:2] if s else None, nb_scores=nb[:2] if nb else None, final=final,
                preferred=decide(final, self.tie_rule), n_self=s[2] if s else 0, n_neighbors=nb[2] if nb else 0,
                neighbors_requested=requested[i], prototype=protos[i], pro_skipped=skipped[i],
            ))
        return out
