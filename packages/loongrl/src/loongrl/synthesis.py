"""End-to-end KeyChain data synthesis: seed items -> filled context -> KeyChain record (spec steps 2-3, "Data")."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

from .context_filling import TokenCounter, fill_context
from .data import DocPool, QAItem
from .keychain import KeyChain, compute_num_chains

__all__ = ["synthesize", "synthesize_one", "output_name", "sample_distract_questions"]


def output_name(dataset: str, num_samples: int, max_seq_length: int, id_format: str, num_uuids: int = 4,
                chains_per_1k: int = 4) -> str:
    """The official file-name pattern (``uuid_len_default_8`` for hex8, ``default`` for full36)."""
    fmt = {"hex8": "default_8", "hex32": "default_32", "full36": "default"}[id_format]
    nc = compute_num_chains(max_seq_length, chains_per_1k)
    return (f"{dataset}_qwen_filtered_core_gaussian-num_sample_{num_samples}-max_seq_{max_seq_length}-uuid_len_{fmt}"
            f"-numchain_{nc}-numhop-{num_uuids}-distractor.jsonl")


def sample_distract_questions(items: Sequence[QAItem], index: int, n: int, rng: random.Random) -> list[str]:
    """``min(n, others)`` questions of other items, chosen by index (never item ``index``, nor its question text)."""
    own = items[index].question
    others = [i for i in range(len(items)) if i != index and items[i].question != own]
    return [items[i].question for i in rng.sample(others, min(n, len(others)))]


def synthesize_one(items: Sequence[QAItem], index: int, pool: DocPool, counter: TokenCounter, *,
                   max_seq_length: int, seed: int = 42, reserve_tokens: int = 128, doc_step: int = 10,
                   core_sigma: float = 0.30, passage_template: str = "Passage {i}:\n{document}", num_uuids: int = 4,
                   chains_per_1k: int = 4, distractors_per_1k: int = 16, id_format: str = "hex8") -> dict[str, Any]:
    """One KeyChain record for ``items[index]``, reproducible from ``seed``.

    Fields: the spec's ``index, input, context, answers, length, distract_questions, distractor_context,
    chain_head_with_question`` plus ``id, source, num_chains, id_format, chains, keychain_pairs,
    insert_positions, core_slots`` (enough to audit or undo the insertion). ``length`` is the filled context's
    token count plus ``reserve_tokens``, as the official script records it.
    """
    item = items[index]
    filled = fill_context(item, pool, counter, max_seq_length, seed, reserve_tokens, doc_step, core_sigma,
                          passage_template)
    rng = random.Random(f"{seed}:{item.id}:keychain")
    n_distract = max(distractors_per_1k * max_seq_length // 1024, distractors_per_1k)
    distract = sample_distract_questions(items, index, n_distract, rng)
    num_chains = compute_num_chains(max_seq_length, chains_per_1k)
    kc = KeyChain.build(filled.text, item.question, distract, num_chains, num_uuids, rng, id_format,
                        where=f"item {item.id!r}")
    return {
        "index": index,
        "id": item.id,
        "source": item.source,
        "input": item.question,
        "context": filled.text,
        "answers": list(item.answers),
        "length": filled.num_tokens + reserve_tokens,
        "distract_questions": distract,
        "distractor_context": kc.text,
        "chain_head_with_question": kc.head,
        "num_chains": num_chains,
        "id_format": id_format,
        "chains": kc.chains,
        "keychain_pairs": kc.pairs,
        "insert_positions": kc.positions,
        "core_slots": filled.core_slots,
    }


def synthesize(items: Sequence[QAItem], tokenizer: Any, max_seq_length: int, num_samples: int = -1,
               **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Yield KeyChain records for the first ``num_samples`` items (-1: all); ``kwargs`` go to :func:`synthesize_one`."""
    pool = DocPool(items)
    counter = TokenCounter(tokenizer)
    n = len(items) if num_samples < 0 else min(num_samples, len(items))
    for i in range(n):
        yield synthesize_one(items, i, pool, counter, max_seq_length=max_seq_length, **kwargs)
