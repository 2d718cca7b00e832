"""GRPO-PTR training loop for audio-text policies: rlcore rollouts, rlcore.pg formulas, accelerate, checkpoints.

Why not ``trl.GRPOTrainer``: in TRL 1.16 the processor's audio outputs (``input_features``,
``feature_attention_mask``) reach ``generate`` but not the loss forward: ``_get_per_token_logps_and_entropies``
forwards only image fields (``pixel_values``, ``image_grid_thw``, ...), and ``_tokenize_prompts`` extracts only
``image`` content parts. The policy would be scored without its audio. This loop is GRPO as TRL runs it
(group-relative advantages with unbiased std + 1e-4, PPO clipped surrogate, optional k3 KL, one update per
generation batch), with the TRL-signature rewards combined by ``rlcore.rewards.combine_rewards``.

Each step, on every process: ``P`` clips (the process's slice of a ``P x world`` global draw) -> ``G`` samples
each through an rlcore ``Generator`` (audio features as ``mm_inputs``, media placeholder ids blocked) -> format,
outcome and PTR reasoning rewards -> advantages -> clipped loss on ``score_continuations(grad=True)`` with the same
audio -> AdamW step (gradients averaged across processes by accelerate). Only the main process writes
``metrics.jsonl`` (metrics gathered across processes) and ``run_summary.json``.

Resume: ``save_steps`` writes ``checkpoint-N`` with ``rlcore.checkpoint`` (weights, optimizer, RNG); sampling
seeds and the data draw depend only on ``(seed, step, prompt index)``, so a resumed run repeats an
uninterrupted one exactly.
"""

from __future__ import annotations

import copy
import json
import math
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from rlcore.pg import aggregate_loss, compute_clipped_surrogate, compute_grpo_advantages, compute_k3_kl
from rlcore.rewards import call_reward

from .config import PTRConfig, TrainConfig
from .policy import AudioTextPolicy
from .rewards import accuracy_reward, format_reward, get_ptr_reasoning_reward

__all__ = ["pad_sequences", "combine", "step_seeds", "step_batch_indices", "apply_lora", "ptr_step", "train_ptr"]


def pad_sequences(rows: list[torch.Tensor | list], pad: float = 0.0, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad 1-D rows into ``(B, T)`` values and a ``(B, T)`` float mask."""
    T = max((len(r) for r in rows), default=0)
    out = torch.full((len(rows), max(T, 1)), pad, dtype=torch.float32, device=device)
    mask = torch.zeros((len(rows), max(T, 1)), dtype=torch.float32, device=device)
    for i, r in enumerate(rows):
        if len(r):
            out[i, : len(r)] = torch.as_tensor(r, dtype=torch.float32, device=device) if not torch.is_tensor(r) \
                else r.to(device=device, dtype=torch.float32)
            mask[i, : len(r)] = 1.0
    return out, mask


def combine(values: list[list[float | None]], weights: list[float]) -> list[float]:
    """Weighted sum over reward functions per completion, ``None`` skipped, all-None -> nan (TRL's nansum).

    ``values[k][i]`` is reward function k on completion i (``rlcore.rewards.combine_rewards``, API I6).

    Example:
        >>> combine([[1.0, None, None], [0.5, 1.0, None]], [2.0, 1.0])
        [2.5, 1.0, nan]
    """
    from rlcore.rewards import combine_rewards

    return combine_rewards(values, weights)


def step_seeds(seed: int, step: int, global_indices: list[int], group_size: int) -> list[int]:
    """One sampling seed per prompt: depends only on (seed, step, global prompt index); sample j uses seed + j."""
    return [((seed * 1_000_003 + step) * 100_003 + g) * group_size for g in global_indices]


def step_batch_indices(n_records: int, seed: int, step: int, per_process: int, rank: int,
                       world: int) -> tuple[list[int], list[int]]:
    """``(record indices, global slot indices)`` of this process at ``step``: its slice of one global draw."""
    rng = random.Random(seed * 1_000_003 + step)
    total = per_process * world
    draw = [rng.randrange(n_records) for _ in range(total)] if total > n_records else rng.sample(range(n_records), total)
    slots = list(range(rank * per_process, (rank + 1) * per_process))
    return [draw[s] for s in slots], slots


def apply_lora(model, cfg: TrainConfig):
    """Wrap the language model's linear layers (not the audio/vision towers) with LoRA adapters (PEFT).

    Returns the model with adapters injected in place (``peft`` keeps the base module tree, so rlcore's generator
    and scoring see an ordinary transformers model); only adapter weights stay trainable.
    """
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        raise ValueError("lora_r > 0 needs PEFT: pip install peft") from None
    mods = [m.strip() for m in cfg.lora_target_modules.split(",") if m.strip()]
    pattern = r"^(?!.*(?:audio_tower|visual|multi_modal_projector)).*\.(?:" + "|".join(mods) + r")$"
    lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, target_modules=pattern)
    model = inject_adapter_in_model(lcfg, model)
    n_lora = 0
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name)
        n_lora += "lora_" in name
    if n_lora == 0:
        raise ValueError(f"lora_target_modules {cfg.lora_target_modules!r} matched no layer of the language model")
    return model


def _columns(records: list[dict[str, Any]], group_size: int) -> dict[str, list]:
    """Dataset columns repeated per rollout (TRL passes every column to reward functions)."""
    keys = sorted({k for r in records for k in r})
    return {k: [r.get(k) for r in records for _ in range(group_size)] for k in keys}


def ptr_step(policy: AudioTextPolicy, model, generator, optimizer, batch: list[dict[str, Any]], audios: list,
             cfg: TrainConfig, reward_fns: list, weights: list[float], reason_fn, step: int, seeds: list[int],
             ref_model=None, accelerator=None) -> dict[str, Any]:
    """One GRPO-PTR update on ``batch`` (P records, audio waveforms aligned). Returns this process's raw values.

    ``model`` is the (possibly DDP/DeepSpeed-wrapped) policy used for the loss forward; ``generator`` an rlcore
    ``Generator`` over the unwrapped policy.
    """
    from rlcore.rollout import SamplingParams, score_continuations

    G = cfg.group_size
    prompt_ids, mm = policy.encode(audios)  # P prompts, mm rows = P
    params = SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, n=G,
                            bad_token_ids=policy.placeholder_token_ids())
    model.eval()
    if cfg.backend == "vllm":  # vLLM takes raw audio and expands the placeholder itself; sync the weights first
        generator.load_weights(policy.model)
        gen_ids, gen_mm = policy.encode_raw(audios)
    else:
        gen_ids, gen_mm = prompt_ids, mm
    comps = [c for row in generator.generate(prompt_ids=gen_ids, params=params, seeds=seeds, mm_inputs=gen_mm)
             for c in row]  # (P*G,), groups contiguous
    texts = [c.text for c in comps]
    cont = [list(c.token_ids) for c in comps]
    cols = _columns(batch, G)
    state = SimpleNamespace(global_step=step)
    values = [call_reward(fn, None, texts, trainer_state=state, **cols) if fn is reason_fn
              else call_reward(fn, None, texts, **cols) for fn in reward_fns]
    rewards = torch.tensor(combine(values, weights), dtype=torch.float32)  # (B,)
    adv = torch.nan_to_num(compute_grpo_advantages(rewards, G), nan=0.0)  # an all-None row takes no part

    model.train()
    rows = [i for i in range(len(prompt_ids)) for _ in range(G)]
    mm_b = {k: v.repeat_interleave(G, dim=0) for k, v in mm.items()}
    pad_id = policy.tokenizer.pad_token_id or 0
    lps = score_continuations(model, [prompt_ids[i] for i in rows], cont, cfg.temperature, pad_id=pad_id,
                              mm_inputs=mm_b, grad=True)
    device = lps[0].device
    logprobs = torch.nn.utils.rnn.pad_sequence([lp.float() for lp in lps], batch_first=True)  # (B, T), with grad
    _, mask = pad_sequences(cont, device=device)  # (B, T): every sampled token (EOS included) is trained
    old = logprobs.detach()  # one update per generation batch: ratio 1, as TRL with num_iterations=1
    loss_tok, _ = compute_clipped_surrogate(logprobs, old, adv.to(device), cfg.epsilon)  # (B, T)
    kl = torch.zeros((), device=device)
    if ref_model is not None and cfg.beta > 0:
        ref = score_continuations(ref_model, [prompt_ids[i] for i in rows], cont, cfg.temperature, pad_id=pad_id,
                                  mm_inputs=mm_b)
        ref_lp, _ = pad_sequences(ref, device=device)
        kl_tok = compute_k3_kl(logprobs, ref_lp)
        loss_tok = loss_tok + cfg.beta * kl_tok
        kl = (kl_tok * mask).sum() / mask.sum().clamp(min=1)
    loss = aggregate_loss(loss_tok, mask, cfg.loss_agg, cfg.max_new_tokens)
    optimizer.zero_grad(set_to_none=True)
    if accelerator is not None:
        accelerator.backward(loss)
    else:
        loss.backward()
    params_ = [p for p in model.parameters() if p.requires_grad]
    grad_norm = torch.nn.utils.clip_grad_norm_(params_, 1.0)
    optimizer.step()
    st = reason_fn.last_stats
    return {"loss": float(loss.detach()), "grad_norm": float(grad_norm), "rewards": rewards.tolist(),
            "format": values[0], "outcome": values[1], "reason_term": values[2], "w_t": st["weight"],
            "tau_mean": st["tau_mean"], "judge_calls": st["judge_calls"], "kl": float(kl.detach()),
            "completion_len": float(mask.sum(1).mean()), "sample": texts[0], "texts": texts,
            "placeholder_sampled": sum(t in set(params.bad_token_ids) for c in cont for t in c)}


def _mean(xs: list) -> float:
    vals = [float(x) for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return sum(vals) / len(vals) if vals else float("nan")


def _enable_activation_checkpointing(model) -> None:
    """Non-reentrant activation checkpointing (transformers 5 name, older name as fallback)."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def _zero_stage(accelerator) -> int:
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    return int(getattr(plugin, "zero_stage", 0) or 0) if plugin is not None else 0


def _make_accelerator(device: str):
    from accelerate import Accelerator

    return Accelerator(cpu=device == "cpu")


def train_ptr(cfg: TrainConfig, policy: AudioTextPolicy | None = None, records: list[dict[str, Any]] | None = None,
              judge=None) -> dict[str, Any]:
    """Run GRPO-PTR steps up to ``cfg.steps``; writes ``output_dir/metrics.jsonl`` and ``run_summary.json``.

    Args:
        cfg: the run config.
        policy: defaults to :func:`~emotionthinker.policy.load_policy` of ``cfg.model``.
        records: defaults to :func:`~emotionthinker.data.load_emotioncot` of ``cfg.input``.
        judge: a judge callable; defaults to ``cfg.judge`` looked up by name.

    Returns:
        ``{"history": [per-step metrics of this run], "judge_calls": total, "output_dir": str, "world_size": int}``.
    """
    from rlcore.checkpoint import load_checkpoint, resolve_resume, save_checkpoint, truncate_jsonl
    from rlcore.cli import progress
    from rlcore.device import seed_everything
    from rlcore.rollout import make_generator
    from rlcore.training import preflight_launch

    from .data import load_emotioncot
    from .policy import load_policy
    from .prosody import load_audio
    from .similarity import SimilarityReward

    preflight_launch()
    out = Path(cfg.output_dir)
    ckpt = resolve_resume(cfg.resume or None, out)  # a bad PATH fails before any model is loaded
    accelerator = _make_accelerator(cfg.device)
    if _zero_stage(accelerator) == 3 and (cfg.save_steps or ckpt is not None):
        raise ValueError("--save-steps/--resume are not supported under DeepSpeed ZeRO-3 (rlcore.checkpoint saves "
                         "whole state dicts); use ZeRO-2 or the LoRA recipe for resumable runs")
    rank, world, main = accelerator.process_index, accelerator.num_processes, accelerator.is_main_process
    seed_everything(cfg.seed)
    records = records if records is not None else load_emotioncot(cfg.input, cfg.audio_root or None)
    policy = policy or load_policy(cfg.model, "cpu" if cfg.device == "cpu" else str(accelerator.device), cfg.dtype)
    ref_model = copy.deepcopy(policy.model).eval() if cfg.beta > 0 else None  # the initial policy, also on resume
    if cfg.lora_r > 0:
        policy.model = apply_lora(policy.model, cfg)
    if cfg.gradient_checkpointing:
        _enable_activation_checkpointing(policy.model)
    ptr_cfg = PTRConfig(**{f: getattr(cfg, f) for f in PTRConfig.__dataclass_fields__})
    reason_fn = get_ptr_reasoning_reward(judge if judge is not None else cfg.judge, ptr_cfg, cfg.group_size)
    outcome = SimilarityReward(cfg.similarity_file or None) if cfg.outcome_reward == "similarity" else accuracy_reward
    reward_fns, weights = [format_reward, outcome, reason_fn], [cfg.format_weight, cfg.outcome_weight, 1.0]
    optimizer = torch.optim.AdamW([p for p in policy.model.parameters() if p.requires_grad], lr=cfg.learning_rate)
    model, optimizer = accelerator.prepare(policy.model, optimizer)
    policy.model = accelerator.unwrap_model(model)
    generator = make_generator(policy.model, policy.tokenizer, backend=cfg.backend,
                               tensor_parallel_size=cfg.tensor_parallel_size,
                               gpu_memory_utilization=cfg.gpu_memory_utilization)
    start = 0
    if ckpt is not None:
        start = load_checkpoint(ckpt, model=policy.model, optimizer=optimizer)["step"]
    if main:
        out.mkdir(parents=True, exist_ok=True)
        if start:
            truncate_jsonl(out / "metrics.jsonl", start - 1)
    cache: dict[str, Any] = {}
    history, judge_calls = [], 0
    log = (out / "metrics.jsonl").open("a" if start else "w", encoding="utf-8") if main else None
    try:
        with progress(disable=not main) as bar:
            task = bar.add_task("GRPO-PTR", total=cfg.steps, completed=start)
            for step in range(start, cfg.steps):
                idx, slots = step_batch_indices(len(records), cfg.seed, step, cfg.prompts_per_step, rank, world)
                batch = [records[i] for i in idx]
                audios = []
                for r in batch:
                    if r["audio_file"] not in cache:
                        cache[r["audio_file"]] = load_audio(r["audio_file"], policy.sample_rate)[0]
                    audios.append(cache[r["audio_file"]])
                seeds = step_seeds(cfg.seed, step, slots, cfg.group_size)
                raw = ptr_step(policy, model, generator, optimizer, batch, audios, cfg, reward_fns, weights,
                               reason_fn, step, seeds, ref_model, accelerator)
                mine = {"rewards": raw["rewards"], "format": raw["format"], "outcome": raw["outcome"],
                        "reason": raw["reason_term"], "judge_calls": raw["judge_calls"], "loss": raw["loss"],
                        "kl": raw["kl"], "len": raw["completion_len"], "tau": raw["tau_mean"],
                        "prompts": [r["audio_path"] for r in batch], "placeholder": raw["placeholder_sampled"]}
                allr = _gather(mine, world)
                m = {"step": step, "loss": _mean([a["loss"] for a in allr]), "grad_norm": raw["grad_norm"],
                     "reward": _mean([x for a in allr for x in a["rewards"]]),
                     "format": _mean([x for a in allr for x in a["format"]]),
                     "accuracy": _mean([x for a in allr for x in a["outcome"]]),
                     "reason_term": _mean([x for a in allr for x in a["reason"]]), "w_t": raw["w_t"],
                     "tau_mean": _mean([a["tau"] for a in allr]), "judge_calls": sum(a["judge_calls"] for a in allr),
                     "kl": _mean([a["kl"] for a in allr]), "completion_len": _mean([a["len"] for a in allr]),
                     "placeholder_sampled": sum(a["placeholder"] for a in allr),
                     "prompts_by_rank": [a["prompts"] for a in allr], "sample": raw["sample"]}
                judge_calls += m["judge_calls"]
                history.append(m)
                if main:
                    log.write(json.dumps(m) + "\n")
                    log.flush()
                bar.advance(task)
                if cfg.save_steps and (step + 1) % cfg.save_steps == 0 and step + 1 < cfg.steps:
                    save_checkpoint(out, step + 1, model=policy.model, optimizer=optimizer,
                                    extra={"records": len(records)})
    finally:
        if log is not None:
            log.close()
    accelerator.wait_for_everyone()
    if main:
        from rlcore.io import write_json

        write_json(out / "run_summary.json", {"world_size": world, "steps": cfg.steps, "resumed_from": start,
                                              "judge_calls_this_run": judge_calls,
                                              "last": {k: v for k, v in history[-1].items() if k != "sample"}
                                              if history else None})
    if cfg.save:  # every rank takes part in gathering a ZeRO-3 state dict; the main process writes
        state = accelerator.get_state_dict(model)
        if main:
            policy.model.save_pretrained(str(out / "final"), state_dict=state)
            policy.processor.save_pretrained(str(out / "final"))
    return {"history": history, "judge_calls": judge_calls, "output_dir": str(out), "world_size": world}


def _gather(obj: dict[str, Any], world: int) -> list[dict[str, Any]]:
    """This step's per-process values from every process (one list entry per rank)."""
    if world == 1:
        return [obj]
    from accelerate.utils import gather_object

    return gather_object([obj])
