"""Held-out preference evaluation: preference accuracy and reward margins of a policy against a reference.

Two accuracies are reported: ``reward_accuracy`` (DPO's implicit reward, ``β Σ_t r_t(y_w) > β Σ_t r_t(y_l)``; needs
a reference and is 0 at initialisation, where every pair ties) and ``likelihood_accuracy`` (the policy alone gives
the chosen response a higher mean per-token log-prob), which is meaningful before training too.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["tokenize_pair", "completion_logps", "evaluate_preferences"]


def tokenize_pair(tokenizer: Any, record: dict[str, Any]) -> tuple[list[int], list[int], list[int]]:
    """Prompt, chosen and rejected token ids for one record (plain strings or chat lists), as TRL's DPO builds them.

    Plain text gets EOS appended to each completion; chat lists are rendered with the chat template.
    """
    prompt, chosen, rejected = record["prompt"], record["chosen"], record["rejected"]
    if isinstance(prompt, list):
        p = tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True, return_dict=False)
        full = [tokenizer.apply_chat_template(prompt + c, tokenize=True, return_dict=False) for c in (chosen, rejected)]
    else:
        eos = tokenizer.eos_token or ""
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        full = [tokenizer(prompt + c + ("" if c.endswith(eos) else eos), add_special_tokens=False)["input_ids"]
                for c in (chosen, rejected)]
    k = 0  # the completion starts where prompt and prompt+completion diverge (TRL's rule)
    while k < min(len(p), *(len(f) for f in full)) and all(f[k] == p[k] for f in full):
        k += 1
    return p[:k], full[0][k:], full[1][k:]


def completion_logps(model: Any, prompts: list[list[int]], completions: list[list[int]],
                     batch_size: int = 8, pad_id: int = 0) -> list[torch.Tensor]:
    """Per-token log-probs ``(len(c),)`` of each completion given its prompt.

    Through rlcore's ``score_continuations`` (one forward per batch, selective log-softmax).
    """
    from rlcore.rollout import score_continuations

    return score_continuations(model, prompts, completions, batch_size=batch_size, pad_id=pad_id)


def evaluate_preferences(model: Any, tokenizer: Any, records: Any, ref_model: Any = None, beta: float = 0.1,
                         batch_size: int = 8, show_progress: bool = False) -> dict[str, float]:
    """Preference accuracy and margins of ``model`` on ``records`` (dicts with prompt/chosen/rejected).

    ``show_progress``: a progress bar on stderr (the CLI's ``eval``).

    Returns:
        ``n``, ``likelihood_accuracy`` and, with ``ref_model``, ``reward_accuracy``, ``reward_margin`` (mean of
        β(Σr(y_w) - Σr(y_l))), ``chosen_reward`` and ``rejected_reward``.
    """
    triples = [tokenize_pair(tokenizer, r) for r in records]
    if not triples:
        raise ValueError("evaluate_preferences needs at least one record")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    bar = None
    if show_progress:
        from rlcore.cli import progress

        bar = progress()
        task = bar.add_task("scoring pairs", total=len(triples) * (4 if ref_model is not None else 2))
        bar.start()

    def score(m: Any, which: int) -> list[torch.Tensor]:
        out: list[torch.Tensor] = []
        for s in range(0, len(triples), batch_size):
            chunk = triples[s:s + batch_size]
            out += completion_logps(m, [t[0] for t in chunk], [t[which] for t in chunk], batch_size, pad)
            if bar is not None:
                bar.advance(task, len(chunk))
        return out

    was = model.training
    model.eval()
    try:
        lc, lr = score(model, 1), score(model, 2)
    finally:
        model.train(was)
    mean_c = torch.stack([x.mean() for x in lc])
    mean_r = torch.stack([x.mean() for x in lr])
    metrics = {"n": float(len(triples)), "likelihood_accuracy": (mean_c > mean_r).float().mean().item()}
    if ref_model is not None:
        rc, rr = score(ref_model, 1), score(ref_model, 2)
        chosen = beta * torch.stack([(a - b).sum() for a, b in zip(lc, rc, strict=True)])
        rejected = beta * torch.stack([(a - b).sum() for a, b in zip(lr, rr, strict=True)])
        metrics.update(reward_accuracy=(chosen > rejected).float().mean().item(),
                       reward_margin=(chosen - rejected).mean().item(),
                       chosen_reward=chosen.mean().item(), rejected_reward=rejected.mean().item())
    if bar is not None:
        bar.stop()
    return metrics
