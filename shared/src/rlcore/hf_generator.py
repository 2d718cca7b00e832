"""The transformers backend: :class:`HFGenerator`, a hand-rolled batched decode loop with shared prefill.

Conventions: see :mod:`rlcore.rollout`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .lm import cache_kwarg, lm_forward
from .sampling import (
    Completion,
    SamplingParams,
    _check_mm,
    _check_seeds,
    _mm_rows,
    _model_dtype,
    _pad_left,
    _positions,
    _prefill_distinct,
    _record,
    _row_uniforms,
    _sample_step,
    _shared_prefix_len,
    decode_context,
    encode_prompts,
    model_device,
)


def _decode_attention_mask(model: Any, mask: torch.Tensor) -> torch.Tensor | None:
    """The ``(B, 1, 1, K)`` mask of decode steps, built once for all of them (None: pass the 2D mask instead).

    A 2D padding mask makes transformers rebuild a 4D mask in every step (about 10% of a small model's decode step
    on CPU); a ready 4D mask is used as given. Only for decoders whose every layer attends to the whole cache (see
    :func:`rlcore.cascade.full_attention_decoder`), with SDPA (boolean: True = attend) or eager attention (additive).

    Args:
        model: the decoder.
        mask: ``(B, K)`` 1 on the keys (prompt and generated tokens, present and future) a row attends to.
    """
    from .cascade import full_attention_decoder

    if not full_attention_decoder(model):
        return None
    keep = mask.bool()[:, None, None, :]  # (B, 1, 1, K)
    impl = model.config._attn_implementation
    if impl == "sdpa":
        return keep
    if impl == "eager":
        dt = _model_dtype(model) or torch.float32
        return torch.zeros(keep.shape, dtype=dt, device=mask.device).masked_fill_(~keep, torch.finfo(dt).min)
    return None


# ``prefix_attention="auto"`` uses cascade attention when it spares a decode step at least this many KV elements
# per layer (rows x prompt positions - shared positions, times kv heads x head dim). Below it, the extra kernels
# per layer cost more than the copies save: measured on a 2-core CPU with the tiny Qwen2 (2 kv heads x 16 dims),
# n=16 rows of one prompt break even near 400 prompt tokens (cascade 0.75x at 128 tokens, 1.12x at 512).
CASCADE_MIN_SAVED = 1 << 17


class HFGenerator:
    """Sampling with a transformers causal LM (or any rlcore LM) through a hand-rolled batched decode loop.

    Why not ``model.generate``: it returns processed scores only, cannot give both sampling and raw log-probs per
    token without a second pass, and re-checks stop strings with a full decode. On CUDA the decode step runs with a
    static KV cache and ``torch.compile`` (``mode="reduce-overhead"``: CUDA graphs), the HF-recommended fast path.

    Shared prefill: the ``n`` rows of one prompt are not prefilled ``n`` times; each distinct prompt of a batch is
    prefilled once and its KV cache is expanded to its rows (``Cache.reorder_cache`` with repeated indices), then
    copied into the static cache on CUDA. Distinct prompts that start with the same ``>= min_shared_prefix``
    tokens (a long instruction head, say) prefill that prefix once too: the batch layout is then
    ``[prefix][left pad][tail]`` (positions follow the mask, so the pads in the middle change nothing). Results
    equal the unshared path (``share_prefill=False``) up to float rounding.

    Args:
        model: a causal LM (HF or rlcore LM interface).
        tokenizer: needed for string prompts, chat messages, text output and stop strings.
        batch_size: rows (prompts x n) decoded together; ``None`` = all at once.
        cache_implementation: ``"dynamic"``, ``"static"`` or ``"auto"`` (static on CUDA).
        compile: compile the decode step; ``"auto"`` = on CUDA only.
        seed: seeds one generator used by calls that pass neither ``generator``, ``seeds`` nor ``params.seed``.
        share_prefill: prefill each distinct prompt once per batch, and a common token prefix of the distinct
            prompts once (see above).
        min_shared_prefix: the shortest common prefix (tokens) worth prefilling once for distinct prompts.
        prefix_attention: how decode steps read the shared prompt KV. ``"cascade"``: it stays shared and each step
            attends to it once per group of rows (:mod:`rlcore.cascade`); ``"expand"``: it is copied to every row
            (plain SDPA); ``"auto"``: cascade where supported (dynamic cache, llama / qwen2 / qwen3 / mistral) and
            worth it: when it spares each decode step at least :data:`CASCADE_MIN_SAVED` KV elements per layer.

    """

    def __init__(self, model: Any, tokenizer: Any = None, device: Any = None, batch_size: int | None = None,
                 cache_implementation: str = "auto", compile: bool | str = "auto", seed: int | None = None,
                 share_prefill: bool = True, min_shared_prefix: int = 32, prefix_attention: str = "auto"):
        self.model = model
        self.tokenizer = tokenizer
        self.device = torch.device(device) if device is not None else model_device(model)
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        on_cuda = self.device.type == "cuda"
        if cache_implementation not in ("auto", "dynamic", "static"):
            raise ValueError(f"cache_implementation must be auto, dynamic or static, got {cache_implementation!r}")
        self.static = cache_implementation == "static" or (cache_implementation == "auto" and on_cuda)
        self.static = self.static and cache_kwarg(model) is not None
        self.compile = on_cuda if compile == "auto" else bool(compile)
        self.share_prefill = share_prefill
        self.min_shared_prefix = min_shared_prefix
        if prefix_attention not in ("auto", "cascade", "expand"):
            raise ValueError(f"prefix_attention must be auto, cascade or expand, got {prefix_attention!r}")
        from .cascade import supports_cascade

        # cascade needs the dynamic (per-row) cache for the generated tokens; the static CUDA path expands
        self.cascade = (prefix_attention != "expand" and share_prefill and not self.static
                        and supports_cascade(model))
        self.cascade_min_saved = 0 if prefix_attention == "cascade" else CASCADE_MIN_SAVED
        if prefix_attention == "cascade" and not self.cascade:
            raise ValueError("prefix_attention='cascade' needs share_prefill, the dynamic cache and a supported HF "
                             "decoder (llama, qwen2, qwen3, mistral without sliding windows)")
        self._step_fn = None
        self._default_generator = (torch.Generator(device=self.device).manual_seed(seed) if seed is not None
                                   else None)
        if tokenizer is not None and tokenizer.pad_token_id is None and tokenizer.eos_token_id is None:
            raise ValueError("tokenizer has neither a pad token nor an eos token: set tokenizer.pad_token")

    # ---------------------------------------------------------------- helpers
    def _eos_ids(self, params: SamplingParams) -> set[int]:
        if params.stop_token_ids is not None:
            return set(params.stop_token_ids)
        ids: set[int] = set()
        for src in (self.tokenizer, getattr(self.model, "config", None)):
            eos = getattr(src, "eos_token_id", None)
            if isinstance(eos, int):
                ids.add(eos)
            elif isinstance(eos, list | tuple):
                ids.update(int(e) for e in eos)
        gen_cfg = getattr(self.model, "generation_config", None)
        eos = getattr(gen_cfg, "eos_token_id", None)
        if isinstance(eos, int):
            ids.add(eos)
        return ids

    def _pad_id(self) -> int:
        tok = self.tokenizer
        if tok is not None:
            return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        return 0

    def _encode(self, prompts, prompt_ids, messages=None) -> list[list[int]]:
        return encode_prompts(self.tokenizer, prompts, prompt_ids, messages=messages)

    def _check_length(self, n_prompt: int, params: SamplingParams) -> None:
        limit = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        if isinstance(limit, int) and n_prompt + params.max_new_tokens > limit:
            raise ValueError(
                f"prompt of {n_prompt} tokens + max_new_tokens={params.max_new_tokens} exceeds the model's context "
                f"of {limit} tokens"
            )

    def _decode_text(self, ids: list[int]) -> str:
        if self.tokenizer is None:
            return ""
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    # ---------------------------------------------------------------- public
    def generate(self, prompts=None, prompt_ids=None, params: SamplingParams | None = None,
                 generator: torch.Generator | None = None, *, seeds: Sequence[int] | None = None,
                 mm_inputs: Mapping[str, torch.Tensor] | None = None,
                 messages: Sequence[list[dict]] | None = None) -> list[list[Completion]]:
        """Sample ``params.n`` continuations of each prompt; see the module docstring for conventions.

        Randomness: ``seeds`` (per prompt, see the module docstring) if given; else ``generator``; else one
        generator seeded ``params.seed``; else the constructor's ``seed``; else torch's global RNG.
        """
        params = params or SamplingParams()
        if params.stop and self.tokenizer is None:
            raise ValueError("stop strings need a tokenizer")
        ids = self._encode(prompts, prompt_ids, messages)
        seeds = _check_seeds(seeds, len(ids))
        mm = _check_mm(mm_inputs, len(ids))
        _record("generate", ids, params, mm)
        if seeds is not None and generator is not None:
            raise ValueError("pass seeds= (one per prompt) or generator=, not both")
        if seeds is None and generator is None:
            if params.seed is not None:
                generator = torch.Generator(device=self.device).manual_seed(params.seed)
            else:
                generator = self._default_generator
        rows = [(i, j) for i in range(len(ids)) for j in range(params.n)]
        bs = self.batch_size or len(rows)
        results: list[list[Completion]] = [[] for _ in ids]
        for start in range(0, len(rows), bs):
            chunk = rows[start:start + bs]
            owners = [i for i, _ in chunk]
            uniforms = None
            if seeds is not None and params.temperature > 0:
                uniforms = torch.stack([_row_uniforms(seeds[i] + j, params.max_new_tokens) for i, j in chunk])
                uniforms = uniforms.to(self.device)
            comps = self._decode_batch([ids[i] for i in owners], params, generator, owners=owners, mm=mm,
                                       uniforms=uniforms)
            for pi, comp in zip(owners, comps):
                comp.prompt_index = pi
                results[pi].append(comp)
        return results

    def _prefill(self, seqs, input_ids, mask, owners, mm, total):
        """Prefill forward for the B rows; returns (last logits (B, 1, V), cache or None, mask, cascade state or None).

        Shared: distinct prompts once (``owners`` says which rows share one), a common token prefix of the distinct
        prompts once (layout ``[prefix][pad][tail]``, see :func:`_prefill_distinct`), then the KV is expanded.
        """
        B = input_ids.shape[0]
        dtype = _model_dtype(self.model)
        uniq = list(dict.fromkeys(owners))
        if self.share_prefill and cache_kwarg(self.model) is not None:
            first = {o: r for r, o in reversed(list(enumerate(owners)))}
            useqs = [seqs[first[o]] for o in uniq]
            L = 0 if mm else _shared_prefix_len(useqs, self.min_shared_prefix)
            if len(uniq) < B or L > 0:
                res = _prefill_distinct(self.model, useqs, self._pad_id(), self.device, L,
                                        _mm_rows(mm, uniq, self.device, dtype))
                if res is not None:
                    logits, cache, umask = res
                    slot = {o: k for k, o in enumerate(uniq)}
                    expand = torch.tensor([slot[o] for o in owners], device=self.device)
                    state = (self._cascade_state(cache, umask, L, expand, self.cascade_min_saved)
                             if self.cascade and not mm else None)
                    if state is not None:
                        from transformers import DynamicCache

                        return (logits.index_select(0, expand), DynamicCache(), umask.index_select(0, expand),
                                state)
                    if len(uniq) < B:
                        cache.reorder_cache(expand)
                        logits, umask = logits.index_select(0, expand), umask.index_select(0, expand)
                    if not self.static:
                        return logits, cache, umask, None
                    static = self._to_static(cache, total)
                    if static is not None:
                        return logits, static, umask, None
            # this cache type cannot be expanded / copied: fall back to prefilling every row
        cache = None
        if self.static:
            from transformers import StaticCache

            cache = StaticCache(config=self.model.config, max_cache_len=total)
        logits, cache = lm_forward(self.model, input_ids, mask, _positions(mask), cache, logits_to_keep=1,
                                   **_mm_rows(mm, owners, self.device, dtype))
        return logits, cache, mask, None

    @staticmethod
    def _cascade_state(cache, umask, prefix_len, expand, min_saved=0):
        """Shared levels for cascade decoding from the distinct prompts' cache (None: cache layout unknown).

        Levels: the common prefix (``prefix_len`` tokens, one group of every row) and each distinct prompt's tail
        (its rows = ``expand == u``); without a common prefix, each distinct prompt whole. None as well when the
        cascade would spare fewer than ``min_saved`` KV elements per layer and step.
        """
        from .cascade import CascadeState, SharedLevel

        layers = getattr(cache, "layers", None)
        if not layers or not all(isinstance(getattr(x, "keys", None), torch.Tensor) for x in layers):
            return None
        K, V, L = [x.keys for x in layers], [x.values for x in layers], prefix_len
        _, h_kv, P, d = K[0].shape
        shared = L + K[0].shape[0] * (P - L)  # KV positions a cascade step reads once
        if (len(expand) * P - shared) * h_kv * d < min_saved:
            return None
        levels = []
        if L > 0:
            levels.append(SharedLevel.from_groups([k[:1, :, :L] for k in K], [v[:1, :, :L] for v in V],
                                                  umask[:1, :L], torch.zeros_like(expand)))
        levels.append(SharedLevel.from_groups([k[:, :, L:].contiguous() for k in K],
                                              [v[:, :, L:].contiguous() for v in V], umask[:, L:], expand))
        return CascadeState(levels)

    def _to_static(self, dyn, total):
        """Copy an expanded DynamicCache into a fresh StaticCache (None when the layer types do not match)."""
        from transformers import StaticCache

        try:
            from transformers.cache_utils import DynamicLayer, StaticLayer
        except ImportError:
            return None
        layers = getattr(dyn, "layers", None)
        static = StaticCache(config=self.model.config, max_cache_len=total)
        s_layers = getattr(static, "layers", None)
        if (not layers or s_layers is None or len(s_layers) != len(layers)
                or any(type(x) is not DynamicLayer for x in layers) or any(type(x) is not StaticLayer for x in s_layers)):
            return None
        for li, layer in enumerate(layers):
            static.update(layer.keys, layer.values, li)
        return static

    def _decode_batch(self, seqs: list[list[int]], params: SamplingParams, generator, *, owners=None, mm=None,
                      uniforms=None) -> list[Completion]:
        # inference mode (see decode_context): its tensors never leave it; the log-probs are copied out, the ids
        # leave as lists
        with decode_context(self.model):
            tokens, lps, raw, ends = self._decode_tensors(seqs, params, generator, owners, mm, uniforms)
        lps, raw = lps.cpu().clone(), raw.cpu().clone()  # normal tensors (usable in autograd by callers)
        return [self._finish(tokens[b][:n], lps[b, :n], raw[b, :n], reason, params)
                for b, (n, reason) in enumerate(ends)]

    def _decode_tensors(self, seqs, params, generator, owners, mm, uniforms):
        """The decode loop; returns (token ids (B lists), sampling and raw log-probs (B, T), [(length, reason)])."""
        B, P = len(seqs), max(len(s) for s in seqs)
        owners = list(range(B)) if owners is None else list(owners)
        self._check_length(P, params)
        eos = self._eos_ids(params)
        eos_t = torch.tensor(sorted(eos), device=self.device, dtype=torch.long) if eos else None
        input_ids, mask = _pad_left(seqs, self._pad_id(), self.device)
        total = P + params.max_new_tokens
        logits, cache, mask, shared = self._prefill(seqs, input_ids, mask, owners, mm, total)
        V = logits.shape[-1]
        bad_t = None
        if params.bad_token_ids:
            if max(params.bad_token_ids) >= V:
                raise ValueError(f"bad_token_ids contain {max(params.bad_token_ids)}, but the vocabulary has {V} ids")
            bad_t = torch.tensor(sorted(set(params.bad_token_ids)), dtype=torch.long, device=self.device)
            if len(bad_t) >= V:
                raise ValueError("bad_token_ids block the whole vocabulary: nothing can be sampled")
        use_cache = cache is not None
        mm_full = _mm_rows(mm, owners, self.device, _model_dtype(self.model)) if not use_cache else {}
        tokens = torch.empty((B, params.max_new_tokens), dtype=torch.long, device=self.device)
        lps = torch.zeros((B, params.max_new_tokens), device=self.device)
        raw = torch.zeros((B, params.max_new_tokens), device=self.device)
        done = torch.zeros(B, dtype=torch.bool, device=self.device)
        eos_at = torch.full((B,), -1, dtype=torch.long, device=self.device)  # the step a row sampled EOS, or -1
        stopped: dict[int, int] = {}  # row -> length, for rows ended by a stop string
        stop_window = 2 * max((len(s) for s in params.stop), default=0) + 4
        pos = _positions(mask)[:, -1:]
        # the masks of all steps at once: step t reads the first W + t + 1 columns (no per-step concatenation)
        W = mask.shape[1]
        full = torch.ones((B, W + params.max_new_tokens), dtype=mask.dtype, device=self.device)
        full[:, :W] = mask
        mask4 = _decode_attention_mask(self.model, full) if use_cache and shared is None and not self.static else None
        for t in range(params.max_new_tokens):
            u = uniforms[:, t] if uniforms is not None else None
            tok, lp, raw_lp = _sample_step(logits[:, -1].float(), params, bad_t, u, generator)  # (B,) each
            tokens[:, t], lps[:, t], raw[:, t] = tok, lp, raw_lp
            if eos_t is not None:
                hit = torch.isin(tok, eos_t) & ~done
                eos_at.masked_fill_(hit, t)
                done |= hit
            if params.stop:
                for b in (~done).nonzero().flatten().tolist():
                    tail = self.tokenizer.decode(tokens[b, max(0, t + 1 - stop_window): t + 1].tolist())
                    if any(s in tail for s in params.stop):
                        stopped[b] = t + 1
                        done[b] = True
            if t == params.max_new_tokens - 1 or bool(done.all()):
                break
            cur = full[:, : W + t + 1]  # (B, W + t + 1)
            pos = pos + 1
            if shared is not None:  # cascade: the prompt KV stays shared (rlcore.cascade)
                from .cascade import cascade_attention

                with cascade_attention(self.model):
                    logits, cache = lm_forward(self.model, tok[:, None], cur, pos, cache, rlcore_cascade=shared)
            elif use_cache:
                step_mask = cur if mask4 is None else mask4[..., : W + t + 1]
                logits, cache = self._step(tok[:, None], step_mask, pos, cache, total)
            else:  # model without a KV cache: re-encode everything (with the multimodal inputs every time)
                seq = torch.cat([input_ids, tokens[:, : t + 1]], dim=1)
                logits, _ = lm_forward(self.model, seq, cur, _positions(cur), None, logits_to_keep=1, **mm_full)
        ends = []
        for b, e in enumerate(eos_at.tolist()):
            if b in stopped:
                ends.append((stopped[b], "stop"))
            elif e >= 0:
                ends.append((e + 1, "eos"))
            else:
                ends.append((params.max_new_tokens, "length"))
        return tokens.tolist(), lps, raw, ends

    def _step(self, tok, mask, pos, cache, total):
        if not self.static:
            return lm_forward(self.model, tok, mask, pos, cache)
        # static cache: a fixed-shape (B, total) mask so the compiled step (CUDA graph) is reused every step
        full_mask = torch.zeros((mask.shape[0], total), dtype=mask.dtype, device=mask.device)
        full_mask[:, : mask.shape[1]] = mask
        if self._step_fn is None:
            name = cache_kwarg(self.model)  # resolved outside the compiled function: no graph break

            def step(t, m, p, c):
                return self.model(input_ids=t, attention_mask=m, position_ids=p, use_cache=True, **{name: c}).logits, c

            self._step_fn = torch.compile(step, mode="reduce-overhead", dynamic=False) if self.compile else step
        logits, cache = self._step_fn(tok, full_mask, pos, cache)
        return logits.clone(), cache

    def _finish(self, ids, lps, raw, reason, params) -> Completion:
        text = self._decode_text(ids)
        if reason == "stop":
            cut = min(text.find(s) for s in params.stop if s in text) if any(s in text for s in params.stop) else -1
            if cut < 0:  # the stop string straddles special tokens: fall back to the raw decode
                full = self.tokenizer.decode(ids)
                cut = min(full.find(s) for s in params.stop if s in full)
                text = full[:cut]
            else:
                text = text[:cut]
        return Completion(-1, ids, text, lps, raw, reason)
