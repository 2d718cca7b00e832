"""Text sampling used by the difficulty filter, hard-item mining and evaluation.

A sampler is any object with ``sample(prompts: list[list[dict]], n: int) -> list[list[str]]`` (chat messages in,
``n`` response texts per prompt out), so tests and benchmarks can plug in scripted samplers. :class:`HFSampler`
wraps a transformers causal LM with ``generate``.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Sampler", "HFSampler"]


class Sampler(Protocol):
    """``sample(prompts, n) -> n response texts per prompt``."""

    def sample(self, prompts: list[list[dict[str, Any]]], n: int) -> list[list[str]]: ...


class HFSampler:
    """Batched sampling from a transformers causal LM through its chat template.

    Args:
        model: a causal LM (eval mode is set).
        tokenizer: its tokenizer; left padding is forced for batched generation.
        temperature: 0 means greedy decoding.
        top_p: nucleus sampling mass.
        max_new_tokens: response budget.
        batch_size: prompts per ``generate`` call.
        seed: torch seed set before each batch, so runs are reproducible.
    """

    def __init__(self, model: Any, tokenizer: Any, temperature: float = 1.0, top_p: float = 1.0,
                 max_new_tokens: int = 256, batch_size: int = 4, seed: int = 0):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.temperature, self.top_p = temperature, top_p
        self.max_new_tokens, self.batch_size, self.seed = max_new_tokens, batch_size, seed

    def sample(self, prompts: list[list[dict[str, Any]]], n: int) -> list[list[str]]:
        """``n`` response texts for each chat prompt."""
        import torch
        from transformers import GenerationConfig

        out: list[list[str]] = []
        greedy = self.temperature == 0
        gen = GenerationConfig(
            max_new_tokens=self.max_new_tokens, do_sample=not greedy, num_return_sequences=n,
            pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id,
            **({} if greedy else {"temperature": self.temperature, "top_p": self.top_p, "top_k": 0}),
        )
        for b in range(0, len(prompts), self.batch_size):
            torch.manual_seed(self.seed + b)
            texts = [self.tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
                     for p in prompts[b: b + self.batch_size]]
            enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(self.model.device) for k, v in enc.items()}
            with torch.no_grad():
                ids = self.model.generate(**enc, generation_config=gen)  # (b*n, T_prompt + T_new)
            new = ids[:, enc["input_ids"].shape[1]:]
            dec = self.tokenizer.batch_decode(new, skip_special_tokens=True)
            out += [dec[i * n: (i + 1) * n] for i in range(len(texts))]
        return out
