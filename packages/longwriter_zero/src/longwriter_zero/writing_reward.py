r"""Writing RM: a Bradley-Terry sequence-classification reward model scores the answer's quality (paper §RQ1).

The paper's Writing RM (Qwen2.5-72B trained on labelled preference pairs with
:math:`-\mathbb{E}\log\sigma(r(x,y_w) - r(x,y_l))`) is not released, so any HF
``AutoModelForSequenceClassification`` with one output works here, and :func:`train_reward_model` trains one with
TRL's ``RewardTrainer`` (the same loss).

Input to the RM: the user's *question* (not the policy's long preamble) and the *answer* (thinking stripped),
joined as ``question + "\n\n" + answer`` and closed by the tokenizer's EOS token, built by one function,
:func:`encode_rm_input`, which ``train-rm`` also uses to tokenize its pairs: the RM is scored on exactly the token
layout it was trained on (TRL's ``RewardTrainer`` appends EOS to every sequence; a score without it differs).

Truncation policy (``max_length`` RM tokens; long writing easily exceeds an RM's window):

- the question keeps at most ``max_question_tokens`` tokens (its head);
- the answer fills the rest: ``"head_tail"`` (default) keeps its first and last halves and drops the middle, so
  both the opening and the ending are judged; ``"head"`` keeps the start; ``"tail"`` keeps the end.

A completion without an answer gets ``missing_answer_reward`` (default ``None``: skipped, i.e. contributes 0 to
the advantage average; the Format RM already penalises it).
"""

from __future__ import annotations

from typing import Any

from rlcore.rewards import completion_text

from .prompts import extract_answer

__all__ = ["WritingReward", "get_writing_reward", "truncate_ids", "check_rm_tokenizer", "encode_rm_input"]

TRUNCATION_POLICIES = ("head_tail", "head", "tail")


def truncate_ids(ids: list[int], budget: int, policy: str = "head_tail") -> list[int]:
    """Cut ``ids`` to ``budget`` tokens by ``policy``.

    Example:
        >>> truncate_ids(list(range(10)), 4), truncate_ids(list(range(10)), 4, "tail")
        ([0, 1, 8, 9], [6, 7, 8, 9])
    """
    if policy not in TRUNCATION_POLICIES:
        raise ValueError(f"truncation must be one of {TRUNCATION_POLICIES}, got {policy!r}")
    if budget <= 0:
        return []
    if len(ids) <= budget:
        return list(ids)
    if policy == "head":
        return list(ids[:budget])
    if policy == "tail":
        return list(ids[-budget:])
    head = (budget + 1) // 2
    return list(ids[:head]) + list(ids[len(ids) - (budget - head):])


def check_rm_tokenizer(tokenizer: Any, name: str, pad_with_eos: bool = False) -> None:
    """Batched RM scoring needs a pad token; fail clearly (or use eos when ``pad_with_eos``).

    Raises:
        ValueError: the tokenizer of RM ``name`` has no pad token (and no eos to borrow, or not allowed).
    """
    if tokenizer.pad_token_id is not None:
        return
    if pad_with_eos and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
        return
    raise ValueError(
        f"the tokenizer of reward model {name!r} has no pad token, so it cannot score batches; set one when saving "
        "the RM, or pass rm_pad_with_eos=True to pad with its eos token"
    )


def encode_rm_input(tokenizer: Any, question: str, answer: str, max_length: int = 4096,
                    max_question_tokens: int = 512, truncation: str = "head_tail") -> list[int]:
    """Token ids the writing RM sees: the question and a blank line, the answer, then EOS.

    The question keeps its head (at most ``max_question_tokens``), the answer is cut to the remaining budget by
    ``truncation``, and EOS closes it when the tokenizer has one.

    Used for training (``train-rm``) and scoring alike, so both see the same layout; at most ``max_length`` ids.
    An empty question contributes no tokens (pairs without a prompt).
    """
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    q_ids = tokenizer(question + "\n\n", add_special_tokens=False)["input_ids"] if question else []
    q_ids = truncate_ids(q_ids, min(max_question_tokens, max_length - len(eos) - 1), "head")
    a_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    return q_ids + truncate_ids(a_ids, max_length - len(eos) - len(q_ids), truncation) + eos


class WritingReward:
    """TRL reward: the RM's scalar logit for ``question + answer``, scored in batches of ``batch_size``."""

    def __init__(self, model_path: str, max_length: int = 4096, max_question_tokens: int = 512,
                 truncation: str = "head_tail", batch_size: int = 8, device: str | None = None,
                 dtype: str | None = None, question_column: str = "question", pad_with_eos: bool = False,
                 missing_answer_reward: float | None = None):
        truncate_ids([], 1, truncation)  # validates the policy
        if max_length <= max_question_tokens + 2:
            raise ValueError(f"max_length ({max_length}) must exceed max_question_tokens + 2 ({max_question_tokens + 2})")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model_path, self.max_length, self.max_question_tokens = model_path, max_length, max_question_tokens
        self.truncation, self.batch_size, self.device, self.dtype = truncation, batch_size, device, dtype
        self.question_column, self.pad_with_eos = question_column, pad_with_eos
        self.missing_answer_reward = missing_answer_reward
        self._model = self._tok = None
        self.__name__ = "writing_reward"

    def __getstate__(self) -> dict[str, Any]:  # pickle the recipe, not the weights
        state = dict(self.__dict__)
        state["_model"] = state["_tok"] = None
        return state

    def load(self):
        """Load the RM once (lazily, so the factory stays cheap and picklable)."""
        if self._model is None:
            from rlcore.builtins import resolve
            from rlcore.device import get_device, resolve_dtype
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            path = resolve(self.model_path)
            tok = AutoTokenizer.from_pretrained(path)
            check_rm_tokenizer(tok, self.model_path, self.pad_with_eos)
            dev = get_device(self.device)
            model = AutoModelForSequenceClassification.from_pretrained(path, dtype=resolve_dtype(self.dtype, dev))
            if model.config.num_labels != 1:
                raise ValueError(f"reward model {self.model_path!r} has {model.config.num_labels} labels; need 1")
            model.config.pad_token_id = tok.pad_token_id
            self._model, self._tok = model.to(dev).eval(), tok
        return self._model, self._tok

    def _encode(self, question: str, answer: str) -> list[int]:
        return encode_rm_input(self._tok, question, answer, self.max_length, self.max_question_tokens, self.truncation)

    def score_texts(self, questions: list[str], answers: list[str]) -> list[float]:
        """RM scores of (question, answer) pairs, batched; inputs are truncated by the policy above."""
        import torch

        model, tok = self.load()
        scores: list[float] = []
        for s in range(0, len(answers), self.batch_size):
            feats = [{"input_ids": self._encode(q, a)} for q, a in
                     zip(questions[s : s + self.batch_size], answers[s : s + self.batch_size], strict=True)]
            batch = tok.pad(feats, padding=True, return_tensors="pt", padding_side="right").to(model.device)
            with torch.no_grad():
                logits = model(**batch).logits  # (b, 1)
            scores.extend(logits[:, 0].float().tolist())
        return scores

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
        questions = kwargs.get(self.question_column)
        if questions is None:
            questions = [completion_text(p) if not isinstance(p, str) else p for p in prompts]
        answers = [extract_answer(completion_text(c)) for c in completions]
        idx = [i for i, a in enumerate(answers) if a]
        out: list[float | None] = [self.missing_answer_reward] * len(completions)
        if idx:
            for i, s in zip(idx, self.score_texts([questions[i] for i in idx], [answers[i] for i in idx]), strict=True):
                out[i] = s
        return out


def get_writing_reward(model_path: str, **kwargs: Any) -> WritingReward:
    """Factory for :class:`WritingReward` (picklable; the RM loads on first call). See its arguments."""
    return WritingReward(model_path, **kwargs)
