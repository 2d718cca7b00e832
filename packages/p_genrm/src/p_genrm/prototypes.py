"""User prototypes: K-means over PART-1 embeddings, history-aware attentive refinement, a faiss member index.

Prototypes A (K, d) are L2-normalised K-means centroids of the member embeddings E (N, d) (one member per
training (user, sample) chain). The refinement (spec "History-aware attentive prototype refinement") trains A
together with W_h, W_q, W_s on the members' own preference pairs; members are then re-assigned by argmax E A^T.
At test time :class:`PrototypeIndex` finds the nearest prototype of an analysis embedding and its k most similar
members, through a faiss inverted-file index whose lists are exactly the prototypes' member sets (nprobe = 1).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .evaluation_chain import HistoryPair

__all__ = [
    "Member",
    "Neighbours",
    "SentenceEmbedder",
    "l2_normalize",
    "compute_kmeans_prototypes",
    "compute_attentive_user_vector",
    "compute_prototype_loss",
    "AttentiveRefiner",
    "RefinementBatch",
    "refine_prototypes",
    "PrototypeIndex",
]


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Row-wise unit norm, float32."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


class SentenceEmbedder:
    """sentence-transformers embedder, L2-normalised (the spec's ``normalize_embeddings=True``).

    Default model: the offline all-MiniLM-L6-v2 from ``rlcore.builtins.default_encoder_path()`` (the paper uses
    Qwen3-Embedding-0.6B; pass its path to match).
    """

    def __init__(self, path: str | None = None, device: str = "cpu", batch_size: int = 64):
        from rlcore.builtins import default_encoder_path

        self.path = path or default_encoder_path()
        self.device, self.batch_size = device, batch_size
        self._model = None  # loaded on first use, so a run that fails earlier never pays for it

    def __call__(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` -> (N, d) float32 unit vectors."""
        if not texts:
            raise ValueError("no texts to embed")
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(self.path, device=self.device)
        emb = self._model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)
        return l2_normalize(emb)


def compute_kmeans_prototypes(embeddings: np.ndarray, num_prototypes: int, n_iter: int = 25, n_init: int = 10,
                              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Spherical K-means (faiss) prototypes and assignments.

    ``A = normalize(centroids)`` (K, d); ``assign_n = argmax_j E_n . A_j`` (N,). The spec uses sklearn KMeans
    (n_init=10, random_state=0); faiss with ``nredo = n_init`` is the same objective.

    Raises:
        ValueError: ``num_prototypes`` < 1 or larger than the number of members.
    """
    import faiss

    E = l2_normalize(embeddings)
    n, d = E.shape
    if not 1 <= num_prototypes <= n:
        raise ValueError(f"num_prototypes must be in [1, {n}] (number of members), got {num_prototypes}")
    km = faiss.Kmeans(d, num_prototypes, niter=n_iter, nredo=n_init, seed=seed, spherical=True, verbose=False,
                      min_points_per_centroid=1, max_points_per_centroid=1 << 20)
    km.train(np.ascontiguousarray(E))
    A = l2_normalize(km.centroids)
    return A, np.argmax(E @ A.T, axis=1)


def compute_attentive_user_vector(a, q, h, r_pos_hist, r_neg_hist, hist_mask, W_h, rho: float):
    """History summary s_q of the refinement (spec), batched.

    ``o_i = tanh(W_h [h_i ; r_i^+ - r_i^-])``; ``beta_i = softmax_i((o_i . a + rho o_i . q) / sqrt(d))``;
    ``s_q = sum_i beta_i o_i`` and ``s_q = 0`` for a member with no history.

    Args:
        a: prototype rows (B, d).
        q: query embeddings (B, d).
        h: history user-turn embeddings (B, H, d).
        r_pos_hist: history chosen-response embeddings (B, H, d).
        r_neg_hist: history rejected-response embeddings (B, H, d).
        hist_mask: (B, H) bool, True = a real event.
        W_h: ``torch.nn.Linear(2d, d)``.
        rho: weight of the query term in the attention logits.

    Returns:
        s_q (B, d).
    """
    import torch

    d = a.shape[-1]
    o = torch.tanh(W_h(torch.cat([h, r_pos_hist - r_neg_hist], dim=-1)))  # (B, H, d)
    logits = (torch.einsum("bhd,bd->bh", o, a) + rho * torch.einsum("bhd,bd->bh", o, q)) / d ** 0.5  # (B, H)
    logits = logits.masked_fill(~hist_mask, float("-inf"))
    has = hist_mask.any(dim=1, keepdim=True)  # (B, 1)
    beta = torch.softmax(torch.where(has, logits, torch.zeros_like(logits)), dim=1) * hist_mask  # (B, H)
    return torch.einsum("bh,bhd->bd", beta, o)  # (B, d); zero rows where no history


def compute_prototype_loss(a, q, s_q, r_pos, r_neg, W_q, W_s, lambda_q: float = 1.0, lambda_s: float = 1.0):
    """Pairwise loss of the refinement: ``z = a + l_q W_q q + l_s W_s s_q``, ``y = z . r``, ``L = -log sigma(y+ - y-)``.

    Args: a, q, s_q, r_pos, r_neg (B, d). Returns the mean loss (scalar) and the margins ``y+ - y-`` (B,).
    """
    import torch.nn.functional as F

    z = a + lambda_q * W_q(q) + lambda_s * W_s(s_q)  # (B, d)
    margin = (z * r_pos).sum(-1) - (z * r_neg).sum(-1)  # (B,)
    return F.softplus(-margin).mean(), margin


@dataclass
class RefinementBatch:
    """Embedded preference data of N members: q, r+, r- (N, d); history (N, H, d) x3 with mask (N, H)."""

    q: Any
    r_pos: Any
    r_neg: Any
    h: Any
    h_pos: Any
    h_neg: Any
    h_mask: Any

    def take(self, idx):
        """Rows ``idx`` of every tensor."""
        return RefinementBatch(*(t[idx] for t in (self.q, self.r_pos, self.r_neg, self.h, self.h_pos, self.h_neg,
                                                  self.h_mask)))


class AttentiveRefiner:
    """Trainable prototypes A and the maps W_h (2d->d), W_q, W_s (d->d) of the refinement."""

    def __init__(self, prototypes: np.ndarray, rho: float = 0.5, lambda_q: float = 1.0, lambda_s: float = 1.0,
                 seed: int = 0):
        import torch

        torch.manual_seed(seed)
        K, d = prototypes.shape
        self.A = torch.nn.Parameter(torch.tensor(l2_normalize(prototypes)))  # (K, d)
        self.W_h = torch.nn.Linear(2 * d, d)
        self.W_q = torch.nn.Linear(d, d, bias=False)
        self.W_s = torch.nn.Linear(d, d, bias=False)
        self.rho, self.lambda_q, self.lambda_s = rho, lambda_q, lambda_s

    def parameters(self):
        """All trainable tensors."""
        return [self.A, *self.W_h.parameters(), *self.W_q.parameters(), *self.W_s.parameters()]

    def loss(self, j: int, b: RefinementBatch):
        """Loss and margins of a batch of prototype ``j``'s members."""
        a = self.A[j].expand_as(b.q)  # (B, d)
        s_q = compute_attentive_user_vector(a, b.q, b.h, b.h_pos, b.h_neg, b.h_mask, self.W_h, self.rho)
        return compute_prototype_loss(a, b.q, s_q, b.r_pos, b.r_neg, self.W_q, self.W_s, self.lambda_q, self.lambda_s)


def refine_prototypes(prototypes: np.ndarray, assign: np.ndarray, data: RefinementBatch, epochs: int = 1,
                      batch_size: int = 16, lr: float = 1e-3, rho: float = 0.5, lambda_q: float = 1.0,
                      lambda_s: float = 1.0, seed: int = 0) -> tuple[np.ndarray, dict[str, float]]:
    """Train prototypes prototype by prototype over their members (AdamW), re-normalising the updated row.

    Returns the refined prototypes (K, d) and metrics (mean member loss before and after training, steps).
    """
    import torch

    ref = AttentiveRefiner(prototypes, rho, lambda_q, lambda_s, seed)
    opt = torch.optim.AdamW(ref.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    groups = [torch.tensor(np.flatnonzero(assign == j), dtype=torch.long) for j in range(prototypes.shape[0])]

    def full_loss() -> float:
        with torch.no_grad():
            total = sum(float(ref.loss(j, data.take(m))[0]) * len(m) for j, m in enumerate(groups) if len(m))
        return total / max(sum(len(m) for m in groups), 1)

    before, steps = full_loss(), 0
    for _ in range(epochs):
        for j, members in enumerate(groups):
            members = members[torch.randperm(len(members), generator=g)]
            for s in range(0, len(members), batch_size):
                loss, _ = ref.loss(j, data.take(members[s:s + batch_size]))
                opt.zero_grad()
                loss.backward()
                opt.step()
                with torch.no_grad():
                    ref.A[j] /= ref.A[j].norm().clamp_min(1e-12)
                steps += 1
    with torch.no_grad():  # AdamW's moments also move rows outside the current batch: normalise all at the end
        ref.A /= ref.A.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return ref.A.detach().numpy().astype(np.float32), {"loss_before": before, "loss_after": full_loss(),
                                                       "steps": steps}


@dataclass(frozen=True)
class Member:
    """One prototype member: whose chain it was, and the preference history used to re-score with it."""

    user_id: str
    row_id: str
    history: tuple[HistoryPair, ...]
    analysis: str = ""  # PART 1 of the member's chain (the cached criteria of ``+cproK`` scoring)


@dataclass
class Neighbours:
    """Result of a neighbour search: the prototype, the members found (best first) and what was asked."""

    prototype: int
    members: list[Member]
    similarities: list[float]
    requested: int

    @property
    def short(self) -> bool:
        """True when the prototype had fewer eligible members than requested."""
        return len(self.members) < self.requested


class PrototypeIndex:
    """Prototypes, member embeddings and members, searchable with faiss; ``save``/``load`` every artifact.

    Raises:
        ValueError: mismatched shapes or member count.
    """

    def __init__(self, prototypes: np.ndarray, embeddings: np.ndarray, members: list[Member],
                 initial_prototypes: np.ndarray | None = None, meta: dict[str, Any] | None = None):
        import faiss

        self.A = l2_normalize(prototypes)
        self.E = l2_normalize(embeddings)
        if self.A.ndim != 2 or self.E.ndim != 2 or self.A.shape[1] != self.E.shape[1]:
            raise ValueError(f"prototypes {self.A.shape} and embeddings {self.E.shape} must be (K, d) and (N, d)")
        if len(members) != len(self.E):
            raise ValueError(f"{len(members)} members for {len(self.E)} embeddings")
        self.members = members
        self.A_init = self.A if initial_prototypes is None else l2_normalize(initial_prototypes)
        self.meta = dict(meta or {})
        self.assign = np.argmax(self.E @ self.A.T, axis=1)
        K, d = self.A.shape
        self._quantizer = faiss.IndexFlatIP(d)
        self._quantizer.add(self.A)
        self._index = faiss.IndexIVFFlat(self._quantizer, d, K, faiss.METRIC_INNER_PRODUCT)
        self._index.add(self.E)  # the quantizer assigns each member to argmax_j E_n . A_j
        self._index.nprobe = 1
        self._user_counts = Counter(m.user_id for m in members)
        self._cards: list[str | None] | None = None

    def prototype_criteria(self, members: int = 4, max_chars: int = 4000) -> list[str | None]:
        """Cached criteria of every prototype (None for an empty one), computed once and reused for every user.

        A prototype's criteria are the PART-1 analyses of its ``members`` most central members (largest
        ``E_n . A_j``, most central first), separated by ``---`` lines and clipped to ``max_chars`` in all.

        Raises:
            ValueError: the index was saved without member analyses (rebuild it with this version).
        """
        key = (members, max_chars)
        if self._cards is None or self._cards[0] != key:
            if self.members and not any(m.analysis for m in self.members):
                raise ValueError("this prototype index has no member analyses (needed by +cproK budgets); rebuild it "
                                 "with p-genrm build-prototypes")
            cards: list[str | None] = []
            for j in range(self.A.shape[0]):
                idx = self.members_of(j)
                best = idx[np.argsort(-(self.E[idx] @ self.A[j]), kind="stable")[:members]]
                text = "\n---\n".join(self.members[i].analysis for i in best if self.members[i].analysis)
                cards.append(text[:max_chars] or None)
            self._cards = (key, cards)
        return self._cards[1]

    def members_of(self, j: int) -> np.ndarray:
        """Indices of prototype ``j``'s members."""
        return np.flatnonzero(self.assign == j)

    def nearest_prototype(self, e: np.ndarray) -> int:
        """``argmax_j A_j . e``."""
        return int(np.argmax(self.A @ l2_normalize(e).reshape(-1)))

    def search(self, queries: np.ndarray, k: int, exclude_users: list[str | None] | None = None) -> list[Neighbours]:
        """For each query embedding: the nearest prototype and its ``k`` most similar members by cosine.

        Members of ``exclude_users[i]`` (the querying user: leave-one-out) are skipped. A prototype with fewer
        eligible members than ``k`` returns what it has (``Neighbours.short`` is True); never members of another
        prototype.
        """
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        Q = l2_normalize(np.atleast_2d(queries))
        excl = exclude_users or [None] * len(Q)
        if len(excl) != len(Q):
            raise ValueError(f"{len(excl)} exclude_users for {len(Q)} queries")
        protos = np.argmax(Q @ self.A.T, axis=1)
        if k == 0:
            return [Neighbours(int(p), [], [], 0) for p in protos]
        extra = max((self._user_counts.get(u, 0) for u in excl if u is not None), default=0)
        sims, ids = self._index.search(np.ascontiguousarray(Q), k + extra)
        out = []
        for p, u, srow, irow in zip(protos, excl, sims, ids):
            found = [(int(i), float(s)) for i, s in zip(irow, srow) if i >= 0 and self.members[i].user_id != u][:k]
            out.append(Neighbours(int(p), [self.members[i] for i, _ in found], [s for _, s in found], k))
        return out

    def save(self, directory: str | Path) -> None:
        """Write ``A_init.npy``, ``A.npy``, ``E.npy``, ``assign.npy``, ``members.jsonl``, ``meta.json``."""
        from rlcore.io import atomic_write, write_json, write_jsonl

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for name, arr in (("A_init", self.A_init), ("A", self.A), ("E", self.E), ("assign", self.assign)):
            with atomic_write(d / f"{name}.npy", "wb") as f:
                np.save(f, arr)
        write_jsonl(d / "members.jsonl", ({"user_id": m.user_id, "row_id": m.row_id, "analysis": m.analysis,
                                           "history": [h.to_dict() for h in m.history]} for m in self.members))
        write_json(d / "meta.json", {**self.meta, "num_prototypes": int(self.A.shape[0]), "dim": int(self.A.shape[1]),
                                     "num_members": len(self.members)})

    @classmethod
    def load(cls, directory: str | Path) -> PrototypeIndex:
        """Inverse of :meth:`save`.

        Raises:
            FileNotFoundError: a missing artifact (named).
        """
        from rlcore.io import read_jsonl

        d = Path(directory)
        for name in ("A_init.npy", "A.npy", "E.npy", "members.jsonl", "meta.json"):
            if not (d / name).is_file():
                raise FileNotFoundError(f"prototype artifact missing: {d / name}")
        members = [Member(str(r["user_id"]), str(r["row_id"]), tuple(HistoryPair.from_dict(h) for h in r["history"]),
                          str(r.get("analysis") or ""))
                   for r in read_jsonl(d / "members.jsonl", required=("user_id", "row_id", "history"))]
        meta = json.loads((d / "meta.json").read_text(encoding="utf-8"))
        return cls(np.load(d / "A.npy"), np.load(d / "E.npy"), members, np.load(d / "A_init.npy"), meta)
