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

    budgets = ("ind1", "ind16", "ind16+pro8", "ind2+cpro2") if quick else (
        "ind1", "ind8", "ind16", "ind8+pro4", "ind16+pro8", "ind2+cpro2")
    out = run_synthetic_study(quick=quick, budgets=budgets)
    acc, rel = out["accuracy"], out["release_protocol"]

    def row(g: str) -> str:
        return ", ".join(f"{b} {acc[g][b]:.3f}/{rel[g][b]['accuracy']:.3f}" for b in ("ind1", "ind16", "ind16+pro8",
                                                                                       "ind2+cpro2"))

    headline = (f"pairwise accuracy ours/release protocol; short-history users (1 pair): {row('short')}; "
                f"long-history users (6 pairs): {row('long')}")
    users = out["users"]
    return {
        "what": (f"P-GenRM synthetic-user study, no LLM: {users['train']} prototype-building users and "
                 f"2x{users['test_per_group']} test users from 4 archetypes, a noisy individual judge writing "
                 "evaluation chains; Ind-n vs Ind+Pro through the real parser, faiss prototypes and fusion"),
        "headline": headline,
        "metrics": {"accuracy": acc, "release_protocol": rel, "chains_per_pair": out["chains_per_pair"],
                    "prototype_build": out["prototype_build"], "scoring": out["scoring"]},
    }
