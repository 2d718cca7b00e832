"""A synthetic-user study that needs no LLM: archetype users, a noisy individual judge, the real pipeline.

World: responses are trait vectors x in R^D, written into the text as ``traits [..]``. Users belong to one of a
few latent archetypes with weight vectors w_a; a user's own weights are w_u = normalize(w_a + sigma_u eps) and the
user prefers the response with the larger w_u . x.

Judge (:class:`SyntheticJudge`, a drop-in for an rlcore ``Generator``): it reads the prompt like P-GenRM would,
infers the user's weights from the history block (w_hat = normalize(sum_i x_i^+ - x_i^-), zero without history),
adds per-chain noise (sigma_w on the weights, sigma_s on the 1-10 scores), and writes a full evaluation chain whose
PART 1 states the inferred vector. Everything downstream is the package's real code: prompt building, shuffling,
strict parsing with retries, K-means prototypes with refinement, faiss neighbour search, Ind-n, Pro-k, fusion.
Expected: averaging chains (Ind-n) cancels per-chain noise; for users with short histories the estimate itself
is poor and neighbours of the same archetype (Pro-k) fix it.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from .data import PreferenceRow, UserData
from .evaluation import evaluate_users
from .evaluation_chain import (
    HISTORY_END,
    HISTORY_START,
    JSON_END,
    PROTOTYPE_END,
    PROTOTYPE_START,
    compute_final_score,
    render_chain,
)
from .prototype_building import build_prototype_index
from .scaling import TestTimeScaler
from .scoring import GenRMScorer

__all__ = ["SyntheticWorld", "SyntheticJudge", "VectorEmbedder", "run_synthetic_study"]

_VEC = re.compile(r"\[(-?\d+\.\d+(?:, -?\d+\.\d+)*)\]")
_SLOT = re.compile(r"(traits|topic|preference vector) (\[[^\]]*\])")
_RESP = re.compile(r"\[The Start of Response (\d)\]\n(.*?)\n\[The End of Response \1\]", re.S)


def _fmt(v: np.ndarray) -> str:
    return "[" + ", ".join(f"{x:.3f}" for x in v) + "]"


def _vec(text: str) -> np.ndarray:
    m = _VEC.search(text)
    if m is None:
        raise ValueError(f"no vector found in {text[:80]!r}")
    return np.array([float(t) for t in m.group(1).split(", ")])


class VectorEmbedder:
    """The synthetic stand-in for a sentence encoder: reads the vectors written in a text into fixed slots.

    ``traits [..]`` and ``preference vector [..]`` fill the first ``dim`` coordinates, ``topic [..]`` the next
    ``topic_dim``; each slot is unit-normalised, then the whole vector.
    """

    def __init__(self, dim: int, topic_dim: int):
        self.dim, self.topic_dim = dim, topic_dim

    def __call__(self, texts: list[str]) -> np.ndarray:
        """(N, dim + topic_dim) float32 unit vectors."""
        M = np.zeros((len(texts), self.dim + self.topic_dim), dtype=np.float32)
        for i, t in enumerate(texts):
            found = _SLOT.findall(t)
            if not found:
                raise ValueError(f"no vector found in {t[:80]!r}")
            for tag, vec in found:
                v = _vec(vec)
                v = v / max(np.linalg.norm(v), 1e-12)
                if tag == "topic":
                    M[i, self.dim:] = v
                else:
                    M[i, :self.dim] = v
        return M / np.maximum(np.linalg.norm(M, axis=1, keepdims=True), 1e-12)


@dataclass
class SyntheticWorld:
    """Archetypes and users; ``user_weights[uid]`` is each user's true weight vector."""

    dim: int = 4
    archetypes: int = 4
    user_noise: float = 0.2
    topic_dim: int = 3
    topic_noise: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        W = self.rng.normal(size=(self.archetypes, self.dim))
        self.W = W / np.linalg.norm(W, axis=1, keepdims=True)
        T = self.rng.normal(size=(self.archetypes, self.topic_dim))
        self.T = T / np.linalg.norm(T, axis=1, keepdims=True)  # topic centre of each archetype's queries
        self.archetype_of: dict[str, int] = {}
        self.user_weights: dict[str, np.ndarray] = {}

    def _row(self, uid: str, split: str, j: int) -> PreferenceRow:
        w = self.user_weights[uid]
        x1, x2 = self.rng.normal(size=(2, self.dim))
        c, r = (x1, x2) if w @ x1 >= w @ x2 else (x2, x1)
        t = self.T[self.archetype_of[uid]] + self.topic_noise * self.rng.normal(size=self.topic_dim)
        q = f"Query {j} of {uid}, topic {_fmt(t)}"
        return PreferenceRow(uid, split, q, q, f"Response with traits {_fmt(c)}", f"Response with traits {_fmt(r)}",
                             f"{uid}-{split}-{j}")

    def make_users(self, prefix: str, n_users: int, n_train: int, n_test: int) -> dict[str, UserData]:
        """``n_users`` users with ``n_train`` train rows (their history pool) and ``n_test`` test rows."""
        users = {}
        for i in range(n_users):
            uid = f"{prefix}{i}"
            self.archetype_of[uid] = i % self.archetypes
            w = self.W[i % self.archetypes] + self.user_noise * self.rng.normal(size=self.dim)
            self.user_weights[uid] = w / np.linalg.norm(w)
            users[uid] = UserData(uid, [self._row(uid, "train", j) for j in range(n_train)], [],
                                  [self._row(uid, "test", j) for j in range(n_test)])
        return users


class SyntheticJudge:
    """A noisy individual judge with rlcore's ``Generator.generate`` interface (no LLM involved).

    Args:
        weight_noise: sigma_w, per-chain noise on the inferred weights (the judge's sampling randomness).
        score_noise: sigma_s, per-chain noise on each 1-10 criterion score.
        fail_rate: probability that a chain is malformed (cut before ``<JSON_END>``, as when the token budget
            runs out): no parser reads it, the retries re-sample it.
        slip_rate: probability that a stated final score has an arithmetic slip (off by 0.2-0.5, like the
            paper's "= 5.4" for 5.65): the lenient parser takes it as written, ``--strict-arithmetic`` rejects it.

    With analyses of similar users in the prompt (``+cproK`` budgets) the judge averages their preference vectors
    and averages that with the one it infers from the history (their average alone without history).
    """

    device = "cpu"
    tokenizer = None

    def __init__(self, weight_noise: float = 0.6, score_noise: float = 1.0, fail_rate: float = 0.05,
                 slip_rate: float = 0.1, seed: int = 0):
        self.weight_noise, self.score_noise, self.fail_rate = weight_noise, score_noise, fail_rate
        self.slip_rate = slip_rate
        self.rng = np.random.default_rng(seed)

    def _infer(self, prompt: str) -> np.ndarray:
        hist = prompt[prompt.find(HISTORY_START):prompt.find(HISTORY_END)]
        chosen = [_vec(m) for m in re.findall(r"Chosen: (.*)", hist)]
        rejected = [_vec(m) for m in re.findall(r"Rejected: (.*)", hist)]
        w = np.zeros_like(_vec(_RESP.search(prompt).group(2)))
        if chosen:
            s = np.sum(np.array(chosen) - np.array(rejected), axis=0)
            w = s / max(np.linalg.norm(s), 1e-12)
        a = prompt.find(PROTOTYPE_START)
        if a >= 0:
            found = re.findall(r"preference vector (\[[^\]]*\])", prompt[a:prompt.find(PROTOTYPE_END)])
            if found:  # the similar users' vectors, averaged, count like the user's own inferred vector
                v = np.mean([_vec(f) / max(np.linalg.norm(_vec(f)), 1e-12) for f in found], axis=0)
                w = w + v / max(np.linalg.norm(v), 1e-12)
                w = w / max(np.linalg.norm(w), 1e-12)
        return w

    def _chain(self, w_hat: np.ndarray, xs: list[np.ndarray], topic: str) -> str:
        w = w_hat + self.weight_noise * self.rng.normal(size=w_hat.shape)
        mag = np.abs(w) / np.abs(w).sum()
        weights = np.floor(mag * 100).astype(int)
        weights[np.argsort(-(mag * 100 - weights))[: 100 - weights.sum()]] += 1  # largest remainder -> sum 100
        fail = self.rng.random() < self.fail_rate
        crit = []
        for d in np.flatnonzero(weights > 0):
            sign = 1.0 if w[d] >= 0 else -1.0
            s = [float(np.clip(np.round(5.5 + 2 * sign * x[d] + self.score_noise * self.rng.normal()), 1, 10))
                 for x in xs]
            crit.append((f"{'high' if sign > 0 else 'low'} trait {d}", int(weights[d]), s[0], s[1]))
        analysis = (f"Persona: inferred preference vector {_fmt(w / max(np.linalg.norm(w), 1e-12))}.\n"
                    f"Scenario: the user asks about topic {topic}.")
        finals = [round(compute_final_score([c[1] for c in crit], [c[2 + j] for c in crit]), 2) for j in (0, 1)]
        if self.rng.random() < self.slip_rate:
            j = int(self.rng.integers(2))
            finals[j] = round(finals[j] + float(self.rng.choice([-1, 1]) * self.rng.uniform(0.2, 0.5)), 2)
        text = render_chain(analysis, crit, finals=(finals[0], finals[1]))
        return text[:text.find(JSON_END)] if fail else text

    def generate(self, prompts: list[str], params: Any = None, generator: Any = None, prompt_ids: Any = None):
        """``params.n`` chains per prompt, as rlcore ``Completion``-like objects with ``.text``."""
        n = getattr(params, "n", 1)
        out = []
        for i, p in enumerate(prompts):
            xs = [_vec(m.group(2)) for m in _RESP.finditer(p)]
            w_hat = self._infer(p)
            user_input = p[p.find("[The Start of User Input]"):p.find("[The End of User Input]")]
            topic = _SLOT.search(user_input).group(2)
            out.append([SimpleNamespace(prompt_index=i, text=self._chain(w_hat, xs, topic)) for _ in range(n)])
        return out


def run_synthetic_study(quick: bool = False, seed: int = 0, budgets: tuple[str, ...] = ("ind1", "ind8", "ind16",
                        "ind4", "ind8+pro4", "ind16+pro8", "ind2+cpro2"), dim: int = 4, archetypes: int = 4,
                        user_noise: float = 0.2, weight_noise: float = 0.5, score_noise: float = 1.0,
                        topic_dim: int = 4, topic_noise: float = 0.3, member_history: int = 6,
                        short_history: int = 1, long_history: int = 6, strict_arithmetic: bool = False,
                        slip_rate: float = 0.1) -> dict[str, Any]:
    """Run the study; returns accuracies per (history group, budget), chains per pair, build metrics.

    ``accuracy`` is our protocol (unscored pairs and ties are errors), ``release_protocol`` the release's (they
    are dropped from the denominator, with counts).
    """
    from .scaling import get_preset, preset_pro_mode

    world = SyntheticWorld(dim=dim, archetypes=archetypes, user_noise=user_noise, topic_dim=topic_dim,
                           topic_noise=topic_noise, seed=seed)
    n_train_users, n_test_users, n_test = (24, 12, 6) if quick else (64, 32, 10)
    train_users = world.make_users("train", n_train_users, n_train=member_history + 1, n_test=0)
    groups = {"short": world.make_users("short", n_test_users, n_train=short_history, n_test=n_test),
              "long": world.make_users("long", n_test_users, n_train=long_history, n_test=n_test)}
    embedder = VectorEmbedder(dim, world.topic_dim)
    judge = SyntheticJudge(weight_noise=weight_noise, score_noise=score_noise, slip_rate=slip_rate, seed=seed)
    scorer = GenRMScorer(judge, max_new_tokens=1, max_retries=2, seed=seed, strict_arithmetic=strict_arithmetic)
    index, build = build_prototype_index(scorer, train_users, embedder, num_prototypes=archetypes * 2,
                                         history_size=member_history, seed=seed)
    results: dict[str, dict[str, float]] = {}
    release: dict[str, dict[str, Any]] = {}
    chains: dict[str, dict[str, float]] = {}
    for name, users in groups.items():
        hist = short_history if name == "short" else long_history
        for budget in budgets:
            ind_n, pro_k = get_preset(budget)
            # every (group, budget) cell draws from its own streams: a cell does not depend on the budget list
            cell = [seed, zlib.crc32(f"{name}|{budget}".encode())]
            judge.rng = np.random.default_rng(cell)
            scorer.rng.seed(str(cell))
            scaler = TestTimeScaler(scorer, index, embedder, ind_n=ind_n, pro_k=pro_k,
                                    pro_mode=preset_pro_mode(budget))
            before, retried = scorer.stats.generated, scorer.stats.retried
            r = evaluate_users(scaler, users, history_size=hist, seed=seed)
            sampled = scorer.stats.generated - before
            chains[budget] = {"budget": (sampled - (scorer.stats.retried - retried)) / r["pairs"],
                              "with_retries": sampled / r["pairs"]}
            results.setdefault(name, {})[budget] = r["accuracy"]
            release.setdefault(name, {})[budget] = {"accuracy": r["release_accuracy"],
                                                    "dropped_unscored": r["dropped_unscored"],
                                                    "dropped_ties": r["dropped_ties"]}
    return {"accuracy": results, "release_protocol": release, "chains_per_pair": chains,
            "parser": "strict" if strict_arithmetic else "lenient", "prototype_build": build,
            "scoring": scorer.stats.as_dict(),
            "users": {"train": n_train_users, "test_per_group": n_test_users, "test_pairs_per_user": n_test}}
