r"""Generative-critic quality reward: any chat model that scores a (request, answer) pair from 1 to 10.

The paper's writing RM (a Bradley-Terry Qwen2.5-72B) is not released; WritingBench, its main benchmark, scores with a
generative critic instead. This reward plugs any public chat model in as the quality reward of GRPO (``--critic-model``
in place of ``--rm-model``): the prompt and the parser are ours, every pair is sampled greedily through
:mod:`rlcore.rollout` in batches (HF or vLLM backend).

The critic is asked to end with ``Score: N`` (N an integer 1-10); :func:`parse_critic_score` takes the last such
line. The reward is ``(N - 1) / 9`` in ``[0, 1]``; an unparsable verdict gives ``None`` (skipped by the advantage
average, and counted in ``unparsable``). The answer is cut to ``max_answer_chars`` (head and tail) so the critic's
context is never exceeded by a runaway generation.
"""

from __future__ import annotations

import re
from typing import Any

from rlcore.rewards import completion_text

from .prompts import extract_answer

__all__ = ["CRITIC_PROMPT", "parse_critic_score", "CriticReward", "get_critic_reward"]

CRITIC_PROMPT = """You are a strict writing critic. Rate the response to the writing request below from 1 (unusable)
to 10 (excellent), judging how well it fulfils the request (including any length or format requirement), and its
fluency, coherence, depth and style. Give one short paragraph of reasons, then end with a line "Score: N".

[Request]
{question}

[Response]
{answer}
"""

_SCORE = re.compile(r"score\s*[:=][\s*]*(\d{1,2})", re.IGNORECASE)  # one char class between ':' and N: no backtracking


def parse_critic_score(text: str) -> int | None:
    """The last ``Score: N`` with ``1 <= N <= 10`` in the critic's text, else ``None``. Linear time, never raises.

    Example:
        >>> parse_critic_score("Clear and vivid. Score: 8"), parse_critic_score("Score: 7/10")
        (8, 7)
        >>> parse_critic_score("Score: 11") is None, parse_critic_score("no verdict") is None
        (True, True)
    """
    if not isinstance(text, str):
        return None
    found = _SCORE.findall(text[-4096:])  # the verdict closes the reply: no need to scan a runaway generation
    if not found:
        return None
    value = int(found[-1])
    return value if 1 <= value <= 10 else None


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return text[:half] + "\n[...]\n" + text[-half:]


class CriticReward:
    """TRL reward: a generative critic's 1-10 score, rescaled to ``[0, 1]`` (``__name__ == "critic_reward"``).

    Args:
        generator: an ``rlcore.rollout`` Generator of the critic model (``make_generator(...)``).
        tokenizer: the critic's tokenizer (its chat template is used when it has one).
        max_new_tokens: the critic's budget for reasons + score.
        max_answer_chars: answers longer than this are cut (head and tail) in the prompt.
        question_column: dataset column holding the user's request.
        batch_size: pairs per generate call.
    """

    def __init__(self, generator: Any, tokenizer: Any = None, max_new_tokens: int = 256,
                 max_answer_chars: int = 24000, question_column: str = "question", batch_size: int = 8):
        self.generator, self.tokenizer = generator, tokenizer or getattr(generator, "tokenizer", None)
        self.max_new_tokens, self.max_answer_chars = max_new_tokens, max_answer_chars
        self.question_column, self.batch_size = question_column, batch_size
        self.unparsable = 0
        self.__name__ = "critic_reward"

    def score_texts(self, questions: list[str], answers: list[str]) -> list[int | None]:
        """The critic's 1-10 score of each pair (``None`` where it did not say one)."""
        from rlcore.rollout import SamplingParams

        params = SamplingParams(max_new_tokens=self.max_new_tokens, temperature=0.0)
        chat = bool(getattr(self.tokenizer, "chat_template", None))
        scores: list[int | None] = []
        for s in range(0, len(answers), self.batch_size):
            texts = [CRITIC_PROMPT.format(question=q, answer=_clip(a, self.max_answer_chars))
                     for q, a in zip(questions[s : s + self.batch_size], answers[s : s + self.batch_size], strict=True)]
            if chat:
                outs = self.generator.generate(messages=[[{"role": "user", "content": t}] for t in texts], params=params)
            else:
                outs = self.generator.generate(prompts=texts, params=params)
            scores += [parse_critic_score(o[0].text) for o in outs]
        self.unparsable += sum(v is None for v in scores)
        return scores

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
        questions = kwargs.get(self.question_column) or [completion_text(p) for p in prompts]
        answers = [extract_answer(completion_text(c)) for c in completions]
        idx = [i for i, a in enumerate(answers) if a]
        out: list[float | None] = [None] * len(completions)
        for i, v in zip(idx, self.score_texts([questions[i] for i in idx], [answers[i] for i in idx]), strict=True):
            out[i] = None if v is None else (v - 1) / 9
        return out


def get_critic_reward(model: str, backend: str = "hf", device: str | None = None, tensor_parallel_size: int = 1,
                      gpu_memory_utilization: float = 0.9, **kwargs: Any) -> CriticReward:
    """A :class:`CriticReward` over the chat model ``model`` (local path, hub name or ``builtin:<name>``)."""
    from rlcore.builtins import load_model_and_tokenizer, resolve
    from rlcore.rollout import make_generator

    if backend == "vllm":
        gen = make_generator(resolve(model), backend="vllm", tensor_parallel_size=tensor_parallel_size,
                             gpu_memory_utilization=gpu_memory_utilization)
        return CriticReward(gen, **kwargs)
    lm, tok = load_model_and_tokenizer(model, device=device)
    return CriticReward(make_generator(lm, tok), tok, **kwargs)
