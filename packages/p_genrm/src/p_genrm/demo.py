"""Demo: the synthetic-user study (no LLM) through the package's real scoring/prototype/scaling pipeline."""

from __future__ import annotations

from typing import Any

__all__ = ["run_demo"]


def run_demo(quick: bool = False) -> dict[str, Any]:
    """Run the synthetic-user study; returns what ran, a one-line headline with the computed accuracies, metrics.

    Users come from 4 latent archetypes; a noisy individual judge writes full evaluation chains that go through
    the strict parser, Ind-n averaging, faiss prototypes (K-means + attentive refinement) and Pro-k re-scoring.
    """
    from .synthetic import run_synthetic_study

    budgets = ("ind1", "ind16", "ind16+pro8") if quick else ("ind1", "ind8", "ind16", "ind8+pro4", "ind16+pro8")
    out = run_synthetic_study(quick=quick, budgets=budgets)
    acc = out["accuracy"]
    s, lg = acc["short"], acc["long"]
    headline = (
        f"short-history users (1 pair): Ind-1 {s['ind1']:.3f}, Ind-16 {s['ind16']:.3f}, Ind-16+Pro-8 "
        f"{s['ind16+pro8']:.3f}; long-history users (6 pairs): Ind-1 {lg['ind1']:.3f}, Ind-16 {lg['ind16']:.3f}, "
        f"Ind-16+Pro-8 {lg['ind16+pro8']:.3f} (pairwise accuracy)"
    )
    users = out["users"]
    return {
        "what": (f"P-GenRM synthetic-user study, no LLM: {users['train']} prototype-building users and "
                 f"2x{users['test_per_group']} test users from 4 archetypes, a noisy individual judge writing "
                 "evaluation chains; Ind-n vs Ind+Pro through the real parser, faiss prototypes and fusion"),
        "headline": headline,
        "metrics": {"accuracy": acc, "prototype_build": out["prototype_build"], "scoring": out["scoring"]},
    }
