"""The triplet anchor (paper §4.3): a response sampled from the current policy for the pair's prompt.

The paper asks for an on-policy anchor "using y_w as the starting point of the context"; the official release
samples a fresh response to the prompt x (top-k 50, top-p 0.95, temperature 0.8, at most 64 new tokens), which is
what we do: the anchor is then position-aligned with y_w and y_l, which the squared-L2 distance assumes.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["split_prompts", "sample_anchors"]


def split_prompts(input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor,
                  pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompt part of each row of a TRL preference batch, left-padded for generation.

    Args:
        input_ids: ``(B, T)`` prompt+response rows (any padding side).
        attention_mask: ``(B, T)``.
        completion_mask: ``(B, T)`` 1 on response tokens.
        pad_token_id: id written into the padding.

    Returns:
        ``(B, P)`` left-padded prompt ids and ``(B, P)`` attention mask.
    """
    prompt_mask = attention_mask.bool() & ~completion_mask.bool()  # (B, T)
    lens = prompt_mask.sum(dim=1)  # (B,)
    P = max(int(lens.max()), 1)
    out_mask = torch.arange(P, device=input_ids.device).unsqueeze(0) >= (P - lens).unsqueeze(1)  # (B, P)
    out = input_ids.new_full((input_ids.size(0), P), pad_token_id).masked_scatter(out_mask, input_ids[prompt_mask])
    return out, out_mask.long()


@torch.no_grad()
def sample_anchors(
    model: Any,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 0.8,
    top_k: int = 50,
    top_p: float = 0.95,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one anchor response per prompt from ``model`` (no gradient).

    Args:
        model: an HF causal LM with ``generate`` (already unwrapped from DDP/DeepSpeed).
        prompt_ids: ``(B, P)`` left-padded prompts.
        prompt_mask: ``(B, P)``.
        max_new_tokens: at most this many anchor tokens (release: ``min(64, max_length - prompt_len)``).
        temperature: sampling temperature (release: 0.8).
        top_k: top-k filter (release: 50).
        top_p: nucleus filter (release: 0.95).
        eos_token_id: ends an anchor; tokens after it are masked.
        pad_token_id: id of the padding.

    Returns:
        ``(B, A)`` anchor token ids (the generated tokens only, up to and including EOS) and ``(B, A)`` mask.
    """
    was_training = model.training
    model.eval()
    try:
        out = model.generate(
            input_ids=prompt_ids,
            attention_mask=prompt_mask,
            do_sample=True,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            max_new_tokens=max_new_tokens,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
        )
    finally:
        model.train(was_training)
    anchor = out[:, prompt_ids.size(1):]  # (B, A)
    if eos_token_id is None:
        return anchor, torch.ones_like(anchor)
    is_eos = (anchor == eos_token_id).long()  # (B, A)
    before_eos = (is_eos.cumsum(dim=1) - is_eos) == 0  # tokens up to and including the first EOS
    return anchor, before_eos.long()
