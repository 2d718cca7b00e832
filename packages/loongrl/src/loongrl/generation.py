r"""Chat-level sampling on top of ``rlcore.rollout``: the only way this package generates text.

A *sampler* is any object with ``sample(prompts: list[messages], n) -> list[list[str]]`` (``n`` response texts per
chat prompt). :class:`ChatSampler` renders each prompt with the tokenizer's chat template, fits it into the model's
window and calls an rlcore ``Generator`` (``make_generator(..., backend="hf"|"vllm")``), so the HF and vLLM
backends and the test fakes of ``rlcore.testing`` all plug in the same way.

Chat templates without a system turn (``builtin:tiny-reasoner`` raises on one) get the system prompt folded into
the first user turn (``system + "\n\n" + user``); :func:`render_chat` says so in ``ChatSampler.notes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlcore.chat import fold_system, render_chat, template_supports_system

__all__ = ["row_seed", "ChatSampler", "render_chat", "template_has_system", "fold_system", "middle_truncate", "model_window",
           "make_chat_sampler", "load_policy", "parse_rope_scaling"]


def row_seed(seed: int, key: str) -> int:
    """A per-row seed from the run seed and a row id (crc32), stable across runs and batch compositions.

    Example:
        >>> row_seed(0, "a") == row_seed(0, "a") != row_seed(1, "a")
        True
    """
    import zlib

    return (seed * 1_000_003 + zlib.crc32(str(key).encode("utf-8"))) % (2**31)


# system-turn folding lives in rlcore (shared with p_genrm); re-exported under this module's names
template_has_system = template_supports_system


def middle_truncate(ids: Sequence[int], keep: int) -> list[int]:
    """Keep the first ``keep // 2`` and last ``keep - keep // 2`` tokens (LongBench's truncation of long inputs).

    Example:
        >>> middle_truncate(list(range(10)), 4)
        [0, 1, 8, 9]
    """
    ids = list(ids)
    if keep <= 0:
        return []
    if len(ids) <= keep:
        return ids
    head = keep // 2
    return ids[:head] + ids[len(ids) - (keep - head):]


def model_window(model: Any) -> int | None:
    """The model's context window (``config.max_position_embeddings``), or ``None`` when unknown (vLLM by name)."""
    w = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return w if isinstance(w, int) and w > 0 else None


class ChatSampler:
    """Sample ``n`` responses per chat prompt through an rlcore ``Generator``.

    Args:
        generator: an rlcore Generator (``HFGenerator``, ``VLLMGenerator`` or a test fake).
        tokenizer: renders chat templates and encodes prompts.
        temperature, top_p, max_new_tokens, seed: ``rlcore.rollout.SamplingParams`` fields.
        window: the model's context window; a prompt longer than ``window - max_new_tokens`` is middle-truncated
            (``truncated`` counts them) and ``max_new_tokens`` is capped at ``window // 2`` (``notes`` says so).
        batch_size: prompts per ``generate`` call (each call is seeded ``seed + first index``).
    """

    def __init__(self, generator: Any, tokenizer: Any, temperature: float = 1.0, top_p: float = 1.0,
                 max_new_tokens: int = 256, seed: int = 0, window: int | None = None, batch_size: int = 8):
        self.generator, self.tokenizer = generator, tokenizer
        self.temperature, self.top_p, self.seed = temperature, top_p, seed
        self.window, self.batch_size = window, max(1, batch_size)
        self.notes: list[str] = []
        if window is not None and max_new_tokens > window // 2:
            self.notes.append(f"max_new_tokens {max_new_tokens} capped at {window // 2} (half the model's "
                              f"{window}-token window)")
            max_new_tokens = window // 2
        self.max_new_tokens = max_new_tokens
        self.truncated = 0
        self.calls = 0

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def encode(self, messages: Sequence[dict[str, Any]], max_new_tokens: int | None = None) -> list[int]:
        """Prompt ids of one chat prompt, middle-truncated to fit the window with ``max_new_tokens`` to spare."""
        text, folded = render_chat(self.tokenizer, messages)
        if folded:
            self._note("the chat template has no system turn: the system prompt was folded into the user turn")
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        budget = None if self.window is None else self.window - (max_new_tokens or self.max_new_tokens)
        if budget is not None and len(ids) > budget:
            self.truncated += 1
            ids = middle_truncate(ids, budget)
        return ids

    def sample(self, prompts: Sequence[Sequence[dict[str, Any]]], n: int = 1,
               max_new_tokens: int | None = None, seeds: Sequence[int] | None = None) -> list[list[str]]:
        """``n`` response texts for each chat prompt (``max_new_tokens`` overrides the default for this call).

        ``seeds`` (one per prompt) make each prompt's samples depend only on its seed (rlcore per-row seeds), so a
        resumed streaming job reproduces an uninterrupted one; without them each call is seeded ``seed + first
        index``.
        """
        from rlcore.rollout import SamplingParams

        budget = max_new_tokens or self.max_new_tokens
        out: list[list[str]] = []
        for b in range(0, len(prompts), self.batch_size):
            chunk = prompts[b: b + self.batch_size]
            ids = [self.encode(p, budget) for p in chunk]
            params = SamplingParams(max_new_tokens=budget, temperature=self.temperature, top_p=self.top_p, n=n,
                                    seed=self.seed + b)
            self.calls += 1
            kw = {} if seeds is None else {"seeds": [int(x) for x in seeds[b: b + self.batch_size]]}
            res = self.generator.generate(prompt_ids=ids, params=params, **kw)
            out += [[c.text for c in row] for row in res]
        return out


def parse_rope_scaling(spec: str, original: int | None) -> dict[str, Any] | None:
    """``"yarn:4"`` -> ``{"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": original}``.

    ``""`` means none. Qwen2.5's model card enables 128K with YaRN factor 4 over 32,768 positions.

    Raises:
        ValueError: not ``<type>:<factor>`` with a known type and a factor > 1.
    """
    if not spec:
        return None
    kind, _, factor = spec.partition(":")
    try:
        f = float(factor)
    except ValueError:
        f = 0.0
    if kind not in ("yarn", "linear", "dynamic") or f <= 1:
        raise ValueError(f"rope_scaling must be '<yarn|linear|dynamic>:<factor > 1>' (e.g. 'yarn:4'), got {spec!r}")
    out: dict[str, Any] = {"rope_type": kind, "factor": f}
    if original:
        out["original_max_position_embeddings"] = original
    return out


def load_policy(ref: str, device: str = "auto", rope_scaling: str = "") -> tuple[Any, Any]:
    """Load a model and tokenizer (``rlcore.builtins``).

    ``rope_scaling`` ("yarn:4") goes into the model config before the weights load, with
    ``max_position_embeddings`` scaled by the factor.
    """
    from rlcore.builtins import load_model_and_tokenizer
    from rlcore.cli import check_model_ref

    dev = None if device == "auto" else device
    if not rope_scaling:
        return load_model_and_tokenizer(ref, device=dev)
    from rlcore.device import get_device, resolve_dtype
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    path = check_model_ref(ref)
    config = AutoConfig.from_pretrained(path)
    orig = getattr(config, "max_position_embeddings", None)
    rope = parse_rope_scaling(rope_scaling, orig)
    params = dict(getattr(config, "rope_parameters", None) or {})
    params.update(rope)
    config.rope_parameters = params  # transformers >= 5 (rope_scaling is its deprecated alias)
    if orig:
        config.max_position_embeddings = int(orig * rope["factor"])
    d = get_device(dev)
    model = AutoModelForCausalLM.from_pretrained(path, config=config, dtype=resolve_dtype(None, d)).to(d).eval()
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return model, tok


def check_backend(backend: str) -> None:
    """Fail fast (before any model loads) when ``backend`` is unknown or is vllm without vLLM installed."""
    import importlib.util

    from rlcore.rollout import BACKENDS, VLLM_MISSING, BackendUnavailableError

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    if backend == "vllm" and importlib.util.find_spec("vllm") is None:
        raise BackendUnavailableError(VLLM_MISSING)


def make_chat_sampler(cfg: Any, model: Any, tokenizer: Any, *, temperature: float | None = None,
                      top_p: float | None = None, max_new_tokens: int | None = None) -> ChatSampler:
    """A :class:`ChatSampler` over ``rlcore.rollout.make_generator(model, tokenizer, backend=cfg.backend, ...)``.

    ``cfg`` supplies ``backend``, ``tensor_parallel_size``, ``gpu_memory_utilization``, ``batch_size``, ``seed``
    and (unless overridden) ``temperature``, ``top_p``, ``max_new_tokens``.
    """
    from rlcore.rollout import make_generator

    gen = make_generator(model, tokenizer, backend=getattr(cfg, "backend", "hf"),
                         batch_size=None, tensor_parallel_size=getattr(cfg, "tensor_parallel_size", 1),
                         gpu_memory_utilization=getattr(cfg, "gpu_memory_utilization", 0.9),
                         seed=getattr(cfg, "seed", None))
    return ChatSampler(gen, tokenizer,
                       temperature=cfg.temperature if temperature is None else temperature,
                       top_p=getattr(cfg, "top_p", 1.0) if top_p is None else top_p,
                       max_new_tokens=cfg.max_new_tokens if max_new_tokens is None else max_new_tokens,
                       seed=getattr(cfg, "seed", 0), window=model_window(model),
                       batch_size=getattr(cfg, "batch_size", 8))
