r"""Arena-Write-style evaluation: pairwise judging against baseline responses, both orders, aggregated to Elo.

Each (policy answer, baseline answer) pair is judged twice with the order swapped. The judge must end with a verdict
``[[A]]``, ``[[B]]`` or ``[[C]]`` (tie); any other output is *counted* as unparsable and leaves that judgement out.
Judges: any callable ``prompt -> text``; :class:`HFJudge` (a local causal LM) and :class:`EndpointJudge` (an
OpenAI-compatible ``/chat/completions`` endpoint) are provided.

Elo: Bradley-Terry strengths fitted by the minorisation-maximisation iteration on win counts (tie = half a win each),
with one virtual tie per pair of models that met (keeps an unbeaten model finite), shown as
:math:`400 \log_{10} p` centred on 1000; intervals are percentiles over bootstrap resamples of the judgements.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import urllib.error
import urllib.request
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


def judge_pairs(judge: Callable[[str], str], items: Sequence[dict[str, Any]], policy_name: str = "policy"):
    """Judge every (question, policy answer, baseline model, baseline answer) item in both orders.

    Returns:
        ``(matches, stats)``: matches ``(model_a, model_b, score_a)`` with score 1/0.5/0, and counts including
        ``unparsable``.
    """
    matches: list[tuple[str, str, float]] = []
    stats = {"judgements": 0, "unparsable": 0, "wins": 0, "losses": 0, "ties": 0}
    for it in items:
        for policy_first in (True, False):
            a, b = (it["answer"], it["baseline_answer"]) if policy_first else (it["baseline_answer"], it["answer"])
            verdict = parse_verdict(judge(JUDGE_PROMPT.format(question=it["question"], a=a, b=b)))
            stats["judgements"] += 1
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
    """A local causal-LM judge (greedy; chat template when the tokenizer has one)."""

    def __init__(self, model: str, max_new_tokens: int = 512, device: str | None = None):
        from rlcore.builtins import load_model_and_tokenizer

        self.model, self.tok = load_model_and_tokenizer(model, device=device)
        self.max_new_tokens = max_new_tokens

    def __call__(self, prompt: str) -> str:
        import torch

        text = prompt
        if getattr(self.tok, "chat_template", None):
            text = self.tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                add_generation_prompt=True)
        enc = self.tok([text], return_tensors="pt", add_special_tokens=False).to(self.model.device)
        with torch.no_grad():
            out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      pad_token_id=self.tok.pad_token_id)
        return self.tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)


class EndpointJudge:
    """An OpenAI-compatible chat endpoint (``{base_url}/chat/completions``); the key comes from ``api_key_env``."""

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", max_tokens: int = 512,
                 timeout: float = 300.0):
        if not model:
            raise ValueError("judge_model (the model name the endpoint serves) is required for an endpoint judge")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.key = model, os.environ.get(api_key_env, "")
        self.max_tokens, self.timeout = max_tokens, timeout

    def __call__(self, prompt: str) -> str:
        body = json.dumps({"model": self.model, "messages": [{"role": "user", "content": prompt}],
                           "max_tokens": self.max_tokens, "temperature": 0}).encode()
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        req = urllib.request.Request(self.url, data=body, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                data = json.loads(r.read())
        except (urllib.error.URLError, TimeoutError) as e:
            raise RuntimeError(f"judge endpoint {self.url} failed: {e}") from e
        try:
            return str(data["choices"][0]["message"]["content"])
        except (KeyError, IndexError, TypeError):
            return ""  # counted as unparsable by parse_verdict
