"""The vLLM backend: :class:`VLLMGenerator` (optional extra ``rlcore[vllm]``; GPU).

Conventions: see :mod:`rlcore.rollout`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .backends import VLLM_MISSING, BackendUnavailableError
from .sampling import Completion, SamplingParams, _check_seeds, _record, encode_prompts


def _import_vllm():
    try:
        import vllm
    except ImportError as e:
        raise BackendUnavailableError(VLLM_MISSING) from e
    return vllm


def _model_ref(model: Any) -> str:
    """A vLLM model reference: a string as is, else the module's ``name_or_path`` / ``config._name_or_path``."""
    if isinstance(model, str | os.PathLike):
        return str(model)
    for ref in (getattr(model, "name_or_path", None), getattr(getattr(model, "config", None), "_name_or_path", None)):
        if isinstance(ref, str) and ref:
            return ref
    raise ValueError("the vllm backend needs a model name or path; this module has no name_or_path "
                     "(save it with save_pretrained and pass the directory)")


class VLLMGenerator:
    """The :class:`Generator` interface on vLLM (optional extra ``rlcore[vllm]``; GPU).

    Mapping (checked on CPU with a fake ``vllm`` module, and end to end by the ``gpu``-marked test):
    - every (prompt i, sample j) is one vLLM request with ``n=1``; with ``seeds`` its seed is ``seeds[i] + j``
      (per-request seed), otherwise ``params.seed + j`` when ``params.seed`` is set (unseeded otherwise). Prompts
      are token ids (``prompt_token_ids``), so continuing from a prefix is passing prompt + prefix; vLLM's prefix
      cache makes the ``n`` requests of one prompt share its prefill.
    - ``bad_token_ids`` -> ``allowed_token_ids`` = every other id of the vocabulary (vLLM masks the rest to -inf
      before sampling, as the HF backend does).
    - ``mm_inputs`` -> ``multi_modal_data`` per prompt under the key given by ``mm_key`` (for example
      ``{"audio": ...}``); vLLM takes raw media there, not processor features, so pass what the model's vLLM
      processor expects.
    - sampling log-probs (``logprobs``) come from vLLM itself with ``logprobs_mode="processed_logprobs"`` (after
      temperature / top-k / top-p / allowed ids); **raw log-probs come from a prefill re-score**: a second,
      prefill-only request over prompt + completion with ``prompt_logprobs=0`` (the raw model's log-prob of every
      prompt token), which is what :func:`score_continuations` computes on the HF side.

    ``load_weights(model)`` copies a training ``nn.Module``'s weights into the engine (on-policy rollouts) and
    resets the prefix cache.

    Args:
        model: model name or path (what ``vllm.LLM(model=...)`` takes).
        tokenizer: for string prompts / chat messages; default the engine's tokenizer.
        tensor_parallel_size: GPUs the model is split over.
        gpu_memory_utilization: fraction of GPU memory vLLM may use.
        seed: the engine seed (``LLM(seed=...)``).
        **llm_kwargs: passed to ``vllm.LLM`` (e.g. ``max_model_len``, ``dtype``, ``enforce_eager``).

    """

    def __init__(self, model: Any, tokenizer: Any = None, *, tensor_parallel_size: int = 1,
                 gpu_memory_utilization: float = 0.9, seed: int | None = None, **llm_kwargs: Any):
        if tensor_parallel_size < 1:
            raise ValueError(f"tensor_parallel_size must be >= 1, got {tensor_parallel_size}")
        if not 0 < gpu_memory_utilization <= 1:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}")
        vllm = _import_vllm()
        if tensor_parallel_size == 1:  # keep the engine in this process so load_weights can reach the model
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        llm_kwargs.setdefault("logprobs_mode", "processed_logprobs")
        if seed is not None:
            llm_kwargs["seed"] = seed
        self.tensor_parallel_size = tensor_parallel_size
        self.llm = vllm.LLM(model=_model_ref(model), tensor_parallel_size=tensor_parallel_size,
                            gpu_memory_utilization=gpu_memory_utilization, **llm_kwargs)
        self.tokenizer = tokenizer or self.llm.get_tokenizer()

    @staticmethod
    def vllm_sampling_kwargs(params: SamplingParams, seed: int | None = None, vocab_size: int | None = None,
                             n: int | None = None) -> dict[str, Any]:
        """SamplingParams -> keyword arguments of ``vllm.SamplingParams`` (tested without vLLM).

        ``seed`` overrides ``params.seed`` (per-request seeds); ``n`` overrides ``params.n``; ``vocab_size`` is
        needed to turn ``bad_token_ids`` into ``allowed_token_ids``.
        """
        kw: dict[str, Any] = dict(n=params.n if n is None else n, temperature=params.temperature,
                                  top_p=params.top_p, top_k=params.top_k if params.top_k > 0 else -1,
                                  max_tokens=params.max_new_tokens, stop=list(params.stop),
                                  stop_token_ids=params.stop_token_ids,
                                  seed=params.seed if seed is None else seed, logprobs=0)
        if params.stop_token_ids is not None and not params.stop_token_ids:
            kw["ignore_eos"] = True  # stop_token_ids=[] means "no EOS stop" in rlcore
        if params.bad_token_ids:
            if vocab_size is None:
                raise ValueError("bad_token_ids on the vllm backend need the vocabulary size")
            bad = set(params.bad_token_ids)
            kw["allowed_token_ids"] = [t for t in range(vocab_size) if t not in bad]
            if not kw["allowed_token_ids"]:
                raise ValueError("bad_token_ids block the whole vocabulary: nothing can be sampled")
        return kw

    def _vocab_size(self) -> int:
        return len(self.tokenizer)

    def generate(self, prompts=None, prompt_ids=None, params: SamplingParams | None = None,
                 generator: torch.Generator | None = None, *, seeds: Sequence[int] | None = None,
                 mm_inputs: Mapping[str, Any] | None = None, messages: Sequence[list[dict]] | None = None,
                 mm_key: str | None = None) -> list[list[Completion]]:
        """See :class:`Generator`. ``generator`` cannot drive vLLM's sampler: pass ``seeds`` or ``params.seed``."""
        vllm = _import_vllm()
        params = params or SamplingParams()
        if generator is not None:
            raise ValueError("the vllm backend cannot use a torch.Generator: pass seeds= or SamplingParams(seed=)")
        ids = encode_prompts(self.tokenizer, prompts, prompt_ids, messages=messages)
        seeds = _check_seeds(seeds, len(ids))
        mm = self._mm_data(mm_inputs, len(ids), mm_key)
        _record("generate", ids, params, mm_inputs)
        vocab = self._vocab_size() if params.bad_token_ids else None
        base_kw = self.vllm_sampling_kwargs(params, vocab_size=vocab, n=1)  # allowed_token_ids built once
        requests, sps, keys = [], [], []
        for i, p in enumerate(ids):
            for j in range(params.n):
                base = seeds[i] if seeds is not None else params.seed
                req: dict[str, Any] = {"prompt_token_ids": list(p)}
                if mm is not None:
                    req["multi_modal_data"] = mm[i]
                requests.append(req)
                sps.append(vllm.SamplingParams(**{**base_kw, "seed": None if base is None else base + j}))
                keys.append(i)
        outs = self.llm.generate(requests, sps, use_tqdm=False)
        samples = [(i, out.outputs[0]) for i, out in zip(keys, outs)]
        rescore = []
        for i, o in samples:
            req = {"prompt_token_ids": list(ids[i]) + list(o.token_ids)}
            if mm is not None:
                req["multi_modal_data"] = mm[i]
            rescore.append(req)
        scored = self.llm.generate(rescore, vllm.SamplingParams(max_tokens=1, prompt_logprobs=0), use_tqdm=False)
        results: list[list[Completion]] = [[] for _ in ids]
        for (i, o), s in zip(samples, scored):
            tids = list(o.token_ids)
            lps = torch.tensor([d[t].logprob for d, t in zip(o.logprobs, tids)], dtype=torch.float32)
            n_p = len(ids[i])
            raw = torch.tensor([d[t].logprob for d, t in zip(s.prompt_logprobs[n_p:], tids)], dtype=torch.float32)
            reason = "length" if o.finish_reason == "length" else ("stop" if isinstance(o.stop_reason, str) else "eos")
            results[i].append(Completion(i, tids, o.text, lps, raw, reason))
        return results

    @staticmethod
    def _mm_data(mm_inputs, n_prompts: int, mm_key: str | None):
        if mm_inputs is None:
            return None
        if not isinstance(mm_inputs, Mapping) or not mm_inputs:
            raise ValueError("mm_inputs must be a non-empty dict")
        if mm_key is None and len(mm_inputs) != 1:
            raise ValueError(
                "the vllm backend takes raw media per prompt as multi_modal_data (e.g. mm_inputs={'audio': [...]}), "
                f"not processor features; got keys {sorted(mm_inputs)}: pass one modality or mm_key=")
        key = mm_key or next(iter(mm_inputs))
        if key not in mm_inputs:
            raise ValueError(f"mm_key {key!r} is not in mm_inputs (keys {sorted(mm_inputs)})")
        vals = mm_inputs[key]
        if len(vals) != n_prompts:
            raise ValueError(f"mm_inputs[{key!r}] has {len(vals)} entries, expected {n_prompts} (one per prompt)")
        return [{key: v} for v in vals]

    def load_weights(self, model: Any) -> int:
        """Copy ``model``'s parameters (a training ``nn.Module``, same architecture) into the engine.

        Uses the engine's in-process model (``llm.llm_engine.model_executor.driver_worker...model_runner.model``,
        the path TRL's colocate mode uses; the engine runs in-process when ``tensor_parallel_size == 1``) and
        otherwise ``LLM.apply_model`` (every tensor-parallel worker loads the full tensors; vLLM's
        ``load_weights`` shards them). Then resets the prefix cache. Returns the number of tensors sent.
        """
        state = getattr(model, "state_dict", None)
        if state is None:
            raise ValueError("load_weights needs an nn.Module (something with state_dict())")
        weights = [(k, v.detach()) for k, v in state().items()]
        target = self._inprocess_model()
        if target is not None:
            target.load_weights(weights)
        elif hasattr(self.llm, "apply_model"):
            cpu = [(k, v.cpu()) for k, v in weights]
            self.llm.apply_model(lambda m: m.load_weights(cpu))
        else:
            raise ValueError("this vLLM version exposes neither an in-process model nor LLM.apply_model")
        reset = getattr(self.llm, "reset_prefix_cache", None)
        if callable(reset):
            reset()
        return len(weights)

    def _inprocess_model(self):
        executor = getattr(getattr(self.llm, "llm_engine", None), "model_executor", None)
        worker = getattr(executor, "driver_worker", None)
        for w in (getattr(worker, "worker", None), worker):
            m = getattr(getattr(w, "model_runner", None), "model", None)
            if m is not None and hasattr(m, "load_weights"):
                return m
        return None
