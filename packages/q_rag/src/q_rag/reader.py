r"""Answer generation over retrieved chunks with a frozen reader LM, and BabiLong's answer metrics.

Prompt (the official evaluation, ``eval_llm_synthetics.py``): retrieved chunks re-sorted into document order and
joined by spaces; user text = ``{instruction}\n{examples}\n{post_prompt}\nContext: {context}\n\nQuestion:
{question}?`` (``<example>`` tags replaced by ``Example:``, ``</example>`` removed, whole text stripped; note the
``?`` appended after a question that already ends with one), sent as a chat with the system message below
(``apply_chat_template``, generation prompt on, Qwen3 thinking off), greedy, 32 new tokens. Instructions, examples
and post-prompts of QA1-QA5 are the BabiLong benchmark's prompts (``booydar/babilong``, Apache-2.0), as used by the
Q-RAG release. A reader without a chat template gets the user text alone.

Metrics (also the official definitions, quirks kept):

- :func:`babilong_em`: the prediction is stripped of spaces and dots at both ends, its **last word** is split on
  commas and compared as a set with the answer split on commas. Case-sensitive.
- :func:`babilong_f1`: the task's label vocabulary (e.g. the six rooms for QA1-QA4) is searched as substrings of
  the lower-cased prediction and answer; F1 of the two label sets (1.0 when both are empty, 0.0 when one is).
  QA5's person labels are capitalised in the vocabulary, so they never match the lower-cased texts (official).

Both metrics are total: any string gives a float, never an exception.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .data import Sample

__all__ = ["BABILONG_PROMPTS", "TASK_LABELS", "SYSTEM_PROMPT", "build_reader_prompt", "reader_messages",
           "babilong_em", "babilong_f1", "answer_questions", "task_from_name", "make_reader"]

SYSTEM_PROMPT = "Your are an AI assistant, your job is to answer questions given to you by the user."

_QA23_INSTRUCTION = (
    "I give you context with the facts about locations and actions of different persons hidden in some random "
    "text and a question.{sep}You need to answer the question based only on the information from the facts.\n"
    "If a person got an item in the first location and travelled to the second location the item is also in the "
    "second location. If a person dropped an item in the first location and moved to the second location the item "
    "remains in the first location."
)

BABILONG_PROMPTS: dict[str, dict[str, str]] = {
    "qa1": {
        "instruction": (
            "I will give you context with the facts about positions of different persons hidden in some random "
            "text and a question. You need to answer the question based only on the information from the facts. "
            "If a person was in different locations, use the latest location to answer the question."),
        "examples": (
            "<example>\nCharlie went to the hallway. Judith come back to the kitchen. Charlie travelled to balcony. "
            "Where is Charlie?\nAnswer: The most recent location of Charlie is balcony.\n</example>\n\n"
            "<example>\nAlan moved to the garage. Charlie went to the beach. Alan went to the shop. Rouse "
            "travelled to balcony. Where is Alan?\nAnswer: The most recent location of Alan is shop.\n</example>"),
        "post_prompt": (
            "Always return your answer in the following format: The most recent location of \u2019person\u2019 is "
            "\u2019location\u2019. Do not write anything else after that."),
    },
    "qa2": {
        "instruction": _QA23_INSTRUCTION.format(sep=""),
        "examples": (
            "<example>\nCharlie went to the kitchen. Charlie got a bottle. Charlie moved to the balcony. "
            "Where is the bottle?\nAnswer: The bottle is in the balcony.\n</example>\n"
            "<example>\nAlan moved to the garage. Alan got a screw driver. Alan moved to the kitchen. Where "
            "is the screw driver?\nAnswer: The screw driver is in the kitchen.\n</example>"),
        "post_prompt": (
            "Always return your answer in the following format: The \u2019item\u2019 is in \u2019location\u2019. "
            "Do not write anything else after that."),
    },
    "qa3": {
        "instruction": _QA23_INSTRUCTION.format(sep=" "),
        "examples": (
            "<example>\nJohn journeyed to the bedroom. Mary grabbed the apple. Mary went back to the bathroom. "
            "Daniel journeyed to the bedroom. Daniel moved to the garden. Mary travelled to the kitchen. "
            "Where was the apple before the kitchen?\nAnswer: Before the kitchen the apple was in the bathroom.\n"
            "</example>\n<example>\nJohn went back to the bedroom. John went back to the garden. John went back to "
            "the kitchen. Sandra took the football. Sandra travelled to the garden. Sandra journeyed to the "
            "bedroom. Where was the football before the bedroom?\nAnswer: Before the bedroom the football was in "
            "the garden.\n</example>"),
        "post_prompt": (
            "Always return your answer in the following format: Before the $location_1$ the $item$ was in the "
            "$location_2$. Do not write anything else after that."),
    },
    "qa4": {
        "instruction": (
            "I will give you context with the facts about different people, their location and actions, hidden in "
            "some random text and a question. You need to answer the question based only on the information from "
            "the facts."),
        "examples": (
            "<example>\nThe hallway is south of the kitchen. The bedroom is north of the kitchen. What is the "
            "kitchen south of?\nAnswer: bedroom\n</example>\n<example>\nThe hallway is east of the bathroom. The "
            "bedroom is west of the bathroom. What is the bathroom east of?\nAnswer: bedroom\n</example>\n"
            "<example>\nThe garden is west of the bedroom. The bedroom is west of the kitchen. What is west of the "
            "bedroom?\nAnswer: garden\n</example>"),
        "post_prompt": "Your answer should contain only one word - location.",
    },
    "qa5": {
        "instruction": (
            "I will give you context with the facts about locations and their relations hidden in some random text "
            "and a question. You need to answer the question based only on the information from the facts."),
        "examples": (
            "<example>\nMary picked up the apple there. Mary gave the apple to Fred. Mary moved to the bedroom. "
            "Bill took the milk there. Who did Mary give the apple to?\nAnswer: Fred\n</example>\n<example>\nJeff "
            "took the football there. Jeff passed the football to Fred. Jeff got the milk there. Bill travelled to "
            "the bedroom. Who gave the football?\nAnswer: Jeff\n</example>\n<example>\nFred picked up the apple "
            "there. Fred handed the apple to Bill. Bill journeyed to the bedroom. Jeff went back to the garden. "
            "What did Fred give to Bill?\nAnswer: apple\n</example>"),
        "post_prompt": (
            "Your answer should contain only one word. Do not write anything else after that. Do not explain your "
            "answer."),
    },
}

_ROOMS = ["bathroom", "bedroom", "garden", "hallway", "kitchen", "office"]
TASK_LABELS: dict[str, list[str]] = {
    "qa1": _ROOMS, "qa2": _ROOMS, "qa3": _ROOMS, "qa4": _ROOMS,
    "qa5": ["Bill", "Fred", "Jeff", "Mary", "apple", "football", "milk"],
}


def task_from_name(name: str, default: str = "qa1") -> str:
    """``qaN`` (N = 1..5) found in a dataset file name (``qa3_three-supporting-facts_test.jsonl`` -> ``qa3``)."""
    m = re.search(r"qa([1-5])(?!\d)", name)
    return f"qa{m.group(1)}" if m else default


def build_reader_prompt(question: str, chunks: Sequence[str], retrieved: Sequence[int], task: str = "qa1") -> str:
    """The official user text for ``task`` with the retrieved chunks in document order as context."""
    if task not in BABILONG_PROMPTS:
        raise ValueError(f"unknown BabiLong task {task!r}; valid: {sorted(BABILONG_PROMPTS)}")
    p = BABILONG_PROMPTS[task]
    context = " ".join(chunks[i] for i in sorted(set(retrieved)))
    examples = p["examples"].replace("<example>", "Example:").replace("</example>", "")
    text = f"{p['instruction']}\n{examples}\n{p['post_prompt']}\nContext: {context}\n\nQuestion: {question}?"
    return text.strip()


def reader_messages(question: str, chunks: Sequence[str], retrieved: Sequence[int], task: str = "qa1") -> list[dict]:
    """System + user chat messages of the official evaluation."""
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": build_reader_prompt(question, chunks, retrieved, task)}]


def babilong_em(prediction: str, answer: str) -> float:
    """Official BabiLong exact match (see the module docstring): 1.0 or 0.0, never raises."""
    if not isinstance(prediction, str) or not isinstance(answer, str):
        return 0.0
    parts = prediction.strip(" .").split()
    last = parts[-1] if parts else prediction.strip(" .")
    return float(set(last.split(",")) == set(answer.split(",")))


def babilong_f1(prediction: str, answer: str, task: str = "qa1") -> float:
    """Official BabiLong label-set F1 for ``task`` (see the module docstring): in [0, 1], never raises."""
    if not isinstance(prediction, str) or not isinstance(answer, str):
        return 0.0
    labels = TASK_LABELS.get(task, _ROOMS)
    pred_l, gold_l = prediction.lower(), answer.lower()
    in_pred = {x for x in labels if x in pred_l}
    in_gold = {x for x in labels if x in gold_l}
    if not in_pred or not in_gold:
        return float(len(in_pred) == len(in_gold))
    same = len(in_pred & in_gold)
    if same == 0:
        return 0.0
    precision, recall = same / len(in_pred), same / len(in_gold)
    return 2 * precision * recall / (precision + recall)


def _render(tokenizer, messages: list[dict]) -> str:
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False,
                                             enable_thinking=False)
    return messages[-1]["content"]


def answer_questions(generator, samples: Sequence[Sample], retrieved: Sequence[Sequence[int]], task: str = "qa1",
                     max_new_tokens: int = 32, tokenizer=None) -> list[str]:
    """Greedy reader answers (one per sample) from ``generator.generate(prompts=..., params=...)``.

    Args:
        generator: an ``rlcore.rollout`` generator (``make_generator(model, tok, backend=...)``).
        samples: the questions and documents.
        retrieved: chunk ids per sample (any order; re-sorted into document order).
        task: BabiLong prompt (``qa1`` .. ``qa5``).
        max_new_tokens: answer length (32 in the paper's BabiLong runs).
        tokenizer: renders the chat (default: ``generator.tokenizer``).
    """
    from rlcore.rollout import SamplingParams

    if len(samples) != len(retrieved):
        raise ValueError(f"{len(samples)} samples but {len(retrieved)} retrieval results")
    tok = tokenizer if tokenizer is not None else getattr(generator, "tokenizer", None)
    prompts = [_render(tok, reader_messages(s.question, s.chunks, r, task))
               for s, r in zip(samples, retrieved, strict=True)]
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0)
    outs = generator.generate(prompts=prompts, params=params)
    return [o[0].text.strip() for o in outs]


def make_reader(cfg):
    """The reader generator of ``q-rag eval`` through ``rlcore.rollout.make_generator`` (``--backend hf|vllm``)."""
    from rlcore.rollout import make_generator

    if cfg.backend == "vllm":
        from rlcore.builtins import resolve

        return make_generator(resolve(cfg.reader_model), None, backend="vllm", seed=cfg.seed,
                              tensor_parallel_size=cfg.tensor_parallel_size,
                              gpu_memory_utilization=cfg.gpu_memory_utilization)
    from rlcore.builtins import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(cfg.reader_model, None if cfg.device == "auto" else cfg.device)
    return make_generator(model, tok, backend=cfg.backend, seed=cfg.seed)
