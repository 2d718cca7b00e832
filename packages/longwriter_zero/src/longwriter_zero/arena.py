r"""Arena-Write-style evaluation: pairwise judging against baseline responses, both orders, aggregated to Elo.

Each (policy answer, baseline answer) pair is judged twice with the order swapped. The judge must end with a verdict
``[[A]]``, ``[[B]]`` or ``[[C]]`` (tie); any other output is *counted* as unparsable and leaves that judgement out.
Judges: any callable ``prompt -> text``; :class:`HFJudge` (a local causal LM through rlcore's generator, batched)
and :class:`EndpointJudge` (an OpenAI-compatible endpoint through the ``openai`` client, which retries connection
errors, 429s and 5xx with exponential backoff) are provided. With a ``cache`` file every verdict is appended as soon
as it is made, so a judge that fails for good (or a killed run) loses nothing: the rerun judges only what is missing.

Elo: Bradley-Terry strengths fitted by the minorisation-maximisation iteration on win counts (tie = half a win each),
with one virtual tie per pair of models that met (keeps an unbeaten model finite), shown as
:math:`400 \log_{10} p` centred on 1000; intervals are percentiles over bootstrap resamples of the judgements.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["JUDGE_PROMPT", "parse_verdict", "judge_pairs", "compute_elo", "bootstrap_elo", "HFJudge", "EndpointJudge"]

JUDGE_PROMPT = """Compare two responses to the same writing request. Judge overall quality: how well each follows
the request (including any length requirement), and its fluency, coherence, depth and style.
End your reply with the verdict [[A]] if Response A is better, [[B]] if Response B is better, or [[C]] for a tie.

[Request]
{question}

[Response A]
{a}

[Response B]
{b}
"""

_VERDICT = re.compile(r"\[\[\s*([ABC])\s*\]\]")


def parse_verdict(text: str) -> str | None:
    """The last ``[[A]]``/``[[B]]``/``[[C]]`` in the judge's text, or ``None`` (unparsable).

    Example:
        >>> parse_verdict("A is longer but B is better. [[B]]"), parse_verdict("I prefer A") is None
        ('B', True)
    """
    found = _VERDICT.findall(text or "")
    return found[-1] if found else None


def _judgement_id(it: dict[str, Any], policy_first: bool) -> str:
    key = [it["question"], it["answer"], it["baseline_model"], it["baseline_answer"], policy_first]
    return hashlib.sha1(json.dumps(key, ensure_ascii=False).encode("utf-8", "surrogatepass")).hexdigest()


def _judge_many(judge: Callable[[str], str], prompts: list[str]) -> list[str]:
    batch = getattr(judge, "judge_batch", None)
    return list(batch(prompts)) if batch is not None else [judge(p) for p in prompts]


def judge_pairs(judge: Callable[[str], str], items: Sequence[dict[str, Any]], policy_name: str = "policy",
                cache: str | None = None, batch_size: int = 8):
    """Judge every (question, policy answer, baseline model, baseline answer) item in both orders.

    Args:
        judge: ``prompt -> text``; a judge with a ``judge_batch(prompts)`` method is called ``batch_size`` at a time.
        items: dicts with ``question``, ``answer``, ``baseline_model``, ``baseline_answer``.
        policy_name: the policy's name in the matches.
        cache: JSONL where each verdict is appended when made (``id``, ``verdict``); verdicts already there are
            reused, so a rerun after a failure judges only the missing pairs.
        batch_size: prompts per ``judge_batch`` call.

    Returns:
        ``(matches, stats)``: matches ``(model_a, model_b, score_a)`` with score 1/0.5/0, and counts including
        ``unparsable`` and ``cached``.
    """
    from rlcore.io import ResumableJsonlWriter, read_jsonl

    jobs = [(it, first, _judgement_id(it, first)) for it in items for first in (True, False)]
    known: dict[str, str | None] = {}
    if cache and os.path.isfile(cache) and os.path.getsize(cache):
        writer = ResumableJsonlWriter(cache)  # drops a partial last line before reading
        known = {r["id"]: r.get("verdict") for r in read_jsonl(cache)}
    todo = [(it, first, jid) for it, first, jid in jobs if jid not in known]
    writer = ResumableJsonlWriter(cache) if cache else None
    try:
        for s in range(0, len(todo), batch_size):
            chunk = todo[s : s + batch_size]
            prompts = [JUDGE_PROMPT.format(question=it["question"], a=it["answer"] if first else it["baseline_answer"],
                                           b=it["baseline_answer"] if first else it["answer"]) for it, first, _ in chunk]
            for (_, _, jid), text in zip(chunk, _judge_many(judge, prompts), strict=True):
                known[jid] = parse_verdict(text)
                if writer is not None:
                    writer.write({"id": jid, "verdict": known[jid]})
    finally:
        if writer is not None:
            writer.close()
    matches: list[tuple[str, str, float]] = []
    stats = {"judgements": len(jobs), "unparsable": 0, "wins": 0, "losses": 0, "ties": 0,
             "cached": len(jobs) - len(todo)}
    for it, policy_first, jid in jobs:
        verdict = known[jid]
        if verdict is None:
            stats["unparsable"] += 1
            continue
        score_first = {"A": 1.0, "B": 0.0, "C": 0.5}[verdict]
        score = score_first if policy_first else 1.0 - score_first  # from the policy's side
        stats["wins" if score == 1 else "losses" if score == 0 else "ties"] += 1
        matches.append((policy_name, it["baseline_model"], score))
    return matches, stats


def compute_elo(matches: Sequence[tuple[str, str, float]], iters: int = 500) -> dict[str, float]:
    """Bradley-Terry Elo (mean 1000) from ``(a, b, score_a)`` matches (see module docstring).

    Example:
        >>> elo = compute_elo([("x", "y", 1.0)] * 3)  # x wins 3 + 0.5 (virtual tie), y wins 0.5
        >>> round(elo["x"] - elo["y"])  # 400 * log10(3.5 / 0.5)
        338
    """
    models = sorted({m for a, b, _ in matches for m in (a, b)})
    if not models:
        return {}
    idx = {m: i for i, m in enumerate(models)}
    n = len(models)
    wins = [0.0] * n
    games = [[0.0] * n for _ in range(n)]
    met = set()
    for a, b, s in matches:
        i, j = idx[a], idx[b]
        wins[i] += s
        wins[j] += 1 - s
        games[i][j] += 1
        games[j][i] += 1
        met.add((min(i, j), max(i, j)))
    for i, j in met:  # one virtual tie per pair that met
        wins[i] += 0.5
        wins[j] += 0.5
        games[i][j] += 1
        games[j][i] += 1
    p = [1.0] * n
    for _ in range(iters):
        new = []
        for i in range(n):
            denom = sum(games[i][j] / (p[i] + p[j]) for j in range(n) if games[i][j])
            new.append(wins[i] / denom if denom else p[i])
        g = math.exp(sum(math.log(x) for x in new) / n)
        p = [x / g for x in new]
    elo = [400 * math.log10(x) for x in p]
    mean = sum(elo) / n
    return {m: 1000 + elo[idx[m]] - mean for m in models}


def bootstrap_elo(matches: Sequence[tuple[str, str, float]], rounds: int = 200, seed: int = 0) -> dict[str, dict]:
    """Elo with 95% bootstrap intervals: ``{model: {"elo", "lo", "hi"}}``."""
    point = compute_elo(matches)
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {m: [] for m in point}
    for _ in range(rounds):
        res = compute_elo([matches[rng.randrange(len(matches))] for _ in matches], iters=200)
        for m in point:
            if m in res:
                samples[m].append(res[m])
    out = {}
    for m, e in point.items():
        s = sorted(samples[m]) or [e]
        out[m] = {"elo": e, "lo": s[int(0.025 * (len(s) - 1))], "hi": s[int(math.ceil(0.975 * (len(s) - 1)))]}
    return out


class HFJudge:
    """A local causal-LM judge: greedy, chat template when the tokenizer has one, batched through rlcore's generator."""

    def __init__(self, model: str, max_new_tokens: int = 512, device: str | None = None, backend: str = "hf",
                 tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9):
        from rlcore.builtins import load_model_and_tokenizer
        from rlcore.rollout import make_generator

        if backend == "hf":
            lm, self.tok = load_model_and_tokenizer(model, device=device)
        else:
            from rlcore.builtins import resolve

            lm, self.tok = resolve(model), None
        self.generator = make_generator(lm, self.tok, backend=backend, tensor_parallel_size=tensor_parallel_size,
                                        gpu_memory_utilization=gpu_memory_utilization)
        self.tok = self.tok or self.generator.tokenizer
        self.max_new_tokens = max_new_tokens

    def judge_batch(self, prompts: list[str]) -> list[str]:
        """Greedy judge outputs for ``prompts``."""
        from rlcore.rollout import SamplingParams

        params = SamplingParams(max_new_tokens=self.max_new_tokens, temperature=0.0)
        if getattr(self.tok, "chat_template", None):
            outs = self.generator.generate(messages=[[{"role": "user", "content": p}] for p in prompts], params=params)
        else:
            outs = self.generator.generate(prompts=prompts, params=params)
        return [o[0].text for o in outs]

    def __call__(self, prompt: str) -> str:
        return self.judge_batch([prompt])[0]


class EndpointJudge:
    """An OpenAI-compatible chat endpoint via the ``openai`` client (``max_retries`` with exponential backoff).

    The API key comes from the environment variable ``api_key_env``; a local server without keys gets a placeholder.
    A judge call that still fails after the retries raises (the judgements made so far are in the cache file).
    """

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", max_tokens: int = 512,
                 timeout: float = 300.0, max_retries: int = 6):
        from openai import OpenAI

        if not model:
            raise ValueError("judge_model (the model name the endpoint serves) is required for an endpoint judge")
        self.client = OpenAI(base_url=base_url.rstrip("/"), api_key=os.environ.get(api_key_env) or "unused",
                             timeout=timeout, max_retries=max_retries)
        self.model, self.max_tokens = model, max_tokens

    def __call__(self, prompt: str) -> str:
        resp = self.client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": prompt}], max_tokens=self.max_tokens, temperature=0)
        choices = getattr(resp, "choices", None) or []
        return (choices[0].message.content or "") if choices else ""  # empty: counted as unparsable
