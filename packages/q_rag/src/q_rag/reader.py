"""Answer generation over retrieved chunks with a frozen reader LM (spec: "Answer generation").

Retrieved chunks are re-sorted into document order and put in a BabiLong-style prompt (instruction, example,
context, question, post-prompt); the reader decodes greedily (``rlcore.rollout.HFGenerator`` or
``VLLMGenerator``). Q-value early stopping (:func:`q_rag.retriever.qvalue_stop`) trims the context first.
"""

from __future__ import annotations

from collections.abc import Sequence

from rlcore.rewards import normalize_answer

from .data import Sample

__all__ = ["BABILONG_INSTRUCTION", "build_reader_prompt", "answer_questions", "answer_correct"]

BABILONG_INSTRUCTION = (
    "I will give you context with the facts about positions of different persons and objects hidden in some "
    "random text and a question. You need to answer the question based only on the information from the facts. "
    "If a person was in different locations, use the latest location to answer the question."
)
BABILONG_EXAMPLE = (
    "<example>\nCharlie went to the hallway. Judith came back to the kitchen. Charlie travelled to balcony. "
    "Where is Charlie?\nAnswer: The most recent location of Charlie is balcony.\n</example>"
)
POST_PROMPT = "Your answer should contain only one word - location. Do not write anything else."


def build_reader_prompt(question: str, chunks: Sequence[str], retrieved: Sequence[int],
                        instruction: str = BABILONG_INSTRUCTION, example: str = BABILONG_EXAMPLE,
                        post_prompt: str = POST_PROMPT) -> str:
    """The reader prompt: instruction, example, post-prompt, then ``Context:`` (document order) and ``Question:``."""
    context = " ".join(chunks[i] for i in sorted(set(retrieved)))
    parts = [p for p in (instruction, example, post_prompt) if p]
    return "\n\n".join(parts) + f"\n\n<context>\n{context}\n</context>\n\nQuestion: {question}\nAnswer:"


def answer_correct(prediction: str, answer: str) -> bool:
    """BabiLong-style accuracy: every normalised answer word appears in the normalised prediction."""
    pred = normalize_answer(prediction).split()
    gold = normalize_answer(answer).replace(",", " ").split()
    return bool(gold) and all(w in pred for w in gold)


def answer_questions(generator, samples: Sequence[Sample], retrieved: Sequence[Sequence[int]],
                     max_new_tokens: int = 32) -> list[str]:
    """Greedy reader answers (one per sample) from ``generator.generate(prompts, params)``.

    Args:
        generator: an ``rlcore.rollout`` generator (``HFGenerator(model, tok)`` or ``VLLMGenerator(path)``).
        samples: the questions and documents.
        retrieved: chunk ids per sample (any order; re-sorted into document order).
        max_new_tokens: answer length (32 in the paper's BabiLong runs).
    """
    from rlcore.rollout import SamplingParams

    if len(samples) != len(retrieved):
        raise ValueError(f"{len(samples)} samples but {len(retrieved)} retrieval results")
    prompts = [build_reader_prompt(s.question, s.chunks, r) for s, r in zip(samples, retrieved, strict=True)]
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0)
    outs = generator.generate(prompts=prompts, params=params)
    return [o[0].text.strip() for o in outs]
