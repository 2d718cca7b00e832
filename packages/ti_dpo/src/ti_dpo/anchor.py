"""The triplet anchor (paper §4.3): a response sampled from the current policy for the pair's prompt.

The paper asks for an on-policy anchor "using y_w as the starting point of the context"; the official release
samples a fresh response to the prompt x (top-k 50, top-p 0.95, temperature 0.8, at most 64 new tokens), which is
what we do: the anchor is then position-aligned with y_w and y_l, which the squared-L2 distance assumes.
Sampling goes through rlcore's generator (``rlcore.rollout``: the HF decode loop with a KV cache, or vLLM).
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["ANCHOR_BACKENDS", "prompt_token_lists", "make_anchor_generator", "sample_anchor_ids", "trim_anchors"]

ANCHOR_BACKENDS = ("hf", "vllm")
VLLM_MISSING = "the vllm backend needs vLLM: pip install 'rlcore[vllm]'"


def prompt_token_lists(input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       completion_mask: torch.Tensor) -> list[list[int]]:
    """The prompt tokens of each row of a TRL preference batch (any padding side).

    Args:
        input_ids: ``(B, T)`` prompt+response rows.
        attention_mask: ``(B, T)``.
        completion_mask: ``(B, T)`` 1 on response tokens.

    Returns:
        ``B`` lists of prompt token ids.

    Example:
        >>> prompt_token_lists(torch.tensor([[5, 6, 7, 0]]), torch.tensor([[1, 1, 1, 0]]), torch.tensor([[0, 0, 1, 0]]))
        [[5, 6]]
    """
    keep = attention_mask.bool() & ~completion_mask.bool()
    return [row[k].tolist() for row, k in zip(input_ids, keep, strict=True)]


def trim_anchors(anchors: list[list[int]], longer: list[int]) -> list[list[int]]:
    """Cut each anchor to the tokens the triplet loss can use: at most the pair's longer response.

    The distance (Eq. 13) sums over positions valid in both the anchor and y_w (or y_l), so anchor token k counts
    only if ``k < max(|y_w|, |y_l|)``; its log-ratio depends on tokens ``<= k`` only (causal LM). Scoring the rest
    costs forward/backward rows and changes nothing.

    Example:
        >>> trim_anchors([[1, 2, 3, 4], [5, 6]], [3, 5])
        [[1, 2, 3], [5, 6]]
    """
    return [x[:n] for x, n in zip(anchors, longer, strict=True)]


def make_anchor_generator(model: Any, tokenizer: Any, backend: str = "hf", tensor_parallel_size: int = 1,
                          gpu_memory_utilization: float = 0.9, seed: int | None = None) -> Any:
    """An rlcore ``Generator`` for anchors: ``make_generator`` when rlcore has it, else the classes directly.

    Raises:
        ValueError: an unknown backend, or ``"vllm"`` without vLLM installed (one line naming the extra).
    """
    if backend not in ANCHOR_BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {ANCHOR_BACKENDS}")
    from rlcore import rollout

    if hasattr(rollout, "make_generator"):
        # hf: a dynamic KV cache and no torch.compile: prompt lengths change every step, and the weights are
        # updated in place between calls (a static-cache CUDA graph would recompile per length)
        kw = {"cache_implementation": "dynamic", "compile": False} if backend == "hf" else {}
        return rollout.make_generator(model, tokenizer, backend=backend, tensor_parallel_size=tensor_parallel_size,
                                      gpu_memory_utilization=gpu_memory_utilization, seed=seed, **kw)
    if backend == "hf":
        return rollout.HFGenerator(model, tokenizer, cache_implementation="dynamic", compile=False)
    try:
        return rollout.VLLMGenerator(getattr(model, "name_or_path", model), tokenizer,
                                     tensor_parallel_size=tensor_parallel_size,
                                     gpu_memory_utilization=gpu_memory_utilization)
    except ImportError as e:
        raise ValueError(VLLM_MISSING) from e


@torch.no_grad()
def sample_anchor_ids(generator: Any, model: Any, prompts: list[list[int]], max_new_tokens: int,
                      temperature: float = 0.8, top_k: int = 50, top_p: float = 0.95,
                      eos_token_id: int | None = None, seeds: list[int] | None = None) -> list[list[int]]:
    """Sample one anchor per prompt from the current policy (no gradient, eval mode).

    Args:
        generator: an rlcore ``Generator`` (its weights are refreshed from ``model`` first when it supports
            ``load_weights``, i.e. vLLM).
        model: the policy (unwrapped), switched to eval mode while sampling.
        prompts: prompt token ids.
        max_new_tokens: at most this many anchor tokens (release: ``min(64, max_length - prompt_len)``).
        temperature: sampling temperature (release: 0.8).
        top_k: top-k filter (release: 50).
        top_p: nucleus filter (release: 0.95).
        eos_token_id: ends an anchor (kept as its last token, as in training rows).
        seeds: one sampling seed per prompt (the trainer derives each from the run seed, the step and the prompt,
            so an anchor does not depend on the batch it is in); ``None``: 0, 1, ...

    Returns:
        One list of generated token ids per prompt (1 to ``max_new_tokens`` tokens).
    """
    import inspect

    from rlcore.rollout import SamplingParams

    seeds = list(seeds) if seeds is not None else list(range(len(prompts)))
    if hasattr(generator, "load_weights"):
        generator.load_weights(model)
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                            stop_token_ids=[eos_token_id] if eos_token_id is not None else None)
    if "seeds" in inspect.signature(generator.generate).parameters:  # rlcore per-row seeds (API E2)
        kw: dict[str, Any] = {"seeds": seeds}
    else:
        kw = {"generator": torch.Generator(device=next(model.parameters()).device).manual_seed(seeds[0])}
    was_training = model.training
    model.eval()
    try:
        out = generator.generate(prompt_ids=prompts, params=params, **kw)
    finally:
        model.train(was_training)
    return [list(rows[0].token_ids) for rows in out]
