"""Batched sampling with per-token log-probs: one ``Generator`` interface, HF and vLLM backends, and scoring.

Every generated token comes with two log-probs:
- ``logprobs``: under the *sampling* distribution actually used (after ``bad_token_ids`` masking, temperature,
  top-k, top-p): what an importance ratio or an MCMC proposal density needs;
- ``raw_logprobs``: under the raw model (temperature 1, no filtering): what a target density p(x) needs.

Conventions: ``token_ids`` include the EOS token when generation ended on it (RL must learn to stop), while
``text`` skips special tokens. A stop string ends generation at the token that completes it; ``text`` is cut just
before the stop string and ``token_ids`` keep the tokens up to and including the completing one.

Prompts are given as exactly one of ``prompts`` (strings), ``prompt_ids`` (token ids; continuing from a prefix is
passing prompt + prefix here) or ``messages`` (chat conversations, rendered with the tokenizer's chat template and
``add_generation_prompt=True``). ``seeds`` (one per prompt) makes sample ``j`` of prompt ``i`` draw all of its
randomness from a generator seeded ``seeds[i] + j``: it then depends only on (seed, prompt, j), never on the other
prompts, ``batch_size`` or ``n``. ``mm_inputs`` are extra model inputs of the prefill forward (e.g. Qwen2-Audio
``input_features``), first dimension = number of prompts.


Backends: :func:`make_generator` (``backend="hf"`` -> :class:`HFGenerator`, ``"vllm"`` -> :class:`VLLMGenerator`).

This module is the public entry point; the code lives by concept in :mod:`rlcore.sampling` (parameters, results,
logit processing, shared helpers), :mod:`rlcore.hf_generator`, :mod:`rlcore.vllm_generator` and
:mod:`rlcore.scoring`, and every name is re-exported here.
"""

from __future__ import annotations

import os
from typing import Any

# Re-exports (noqa: F401): the torch-free backend names (package configs import them at class-definition time),
# CASCADE_MIN_SAVED, and _record / _recorder (the call-recording hook rlcore.testing uses through this module).
from .backends import BACKEND_HELP, BACKENDS, VLLM_MISSING, BackendUnavailableError  # noqa: F401
from .hf_generator import CASCADE_MIN_SAVED, HFGenerator  # noqa: F401
from .sampling import (  # noqa: F401
    Completion,
    Generator,
    SamplingParams,
    _record,
    _recorder,
    decode_context,
    encode_prompts,
    model_device,
    process_logits,
    selective_log_softmax,
)
from .scoring import score_continuations
from .vllm_generator import VLLMGenerator, _import_vllm

__all__ = [
    "BACKENDS",
    "BACKEND_HELP",
    "BackendUnavailableError",
    "SamplingParams",
    "Completion",
    "Generator",
    "HFGenerator",
    "VLLMGenerator",
    "make_generator",
    "decode_context",
    "encode_prompts",
    "model_device",
    "process_logits",
    "selective_log_softmax",
    "score_continuations",
]


def make_generator(model: Any, tokenizer: Any = None, *, backend: str = "hf", batch_size: int | None = None,
                   tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9, seed: int | None = None,
                   **kw: Any):
    """A :class:`Generator` for ``backend`` (one of :data:`BACKENDS`).

    ``"hf"``: ``HFGenerator(model, tokenizer, batch_size=..., seed=..., **kw)`` (``model`` an nn.Module / LM;
    the vLLM options are ignored). ``"vllm"``: ``VLLMGenerator(ref, tokenizer, tensor_parallel_size=...,
    gpu_memory_utilization=..., seed=..., **kw)`` where ``ref`` is ``model`` if it is a string, else the module's
    ``name_or_path``. Raises ``ValueError`` for an unknown backend (listing the choices) and
    :class:`BackendUnavailableError` (one line) when vLLM is not installed.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if tensor_parallel_size < 1:
        raise ValueError(f"tensor_parallel_size must be >= 1, got {tensor_parallel_size}")
    if not 0 < gpu_memory_utilization <= 1:
        raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}")
    if backend == "hf":
        if isinstance(model, str | os.PathLike):
            raise ValueError("the hf backend needs a loaded model (nn.Module); load it first, "
                             "e.g. rlcore.builtins.load_model_and_tokenizer")
        return HFGenerator(model, tokenizer, batch_size=batch_size, seed=seed, **kw)
    _import_vllm()
    return VLLMGenerator(model, tokenizer, tensor_parallel_size=tensor_parallel_size,
                         gpu_memory_utilization=gpu_memory_utilization, seed=seed, **kw)
