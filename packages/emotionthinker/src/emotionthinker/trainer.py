"""GRPO-PTR training loop for audio-text policies, on rlcore.pg's formulas.

Why not ``trl.GRPOTrainer``: in TRL 1.16 the processor's audio outputs (``input_features``,
``feature_attention_mask``) reach ``generate`` but not the loss forward: ``_get_per_token_logps_and_entropies``
forwards only image fields (``pixel_values``, ``image_grid_thw``, ...), and ``_tokenize_prompts`` extracts only
``image`` content parts. The policy would be scored without its audio. This loop is GRPO as TRL runs it
(group-relative advantages with unbiased std + 1e-4, PPO clipped surrogate, optional k3 KL, one update per
generation batch), with the three TRL-signature rewards summed.

Each step: ``P`` clips -> ``G`` samples each (audio repeated per sample) -> format, accuracy and the PTR reasoning
reward -> advantages -> clipped loss -> AdamW step. ``metrics.jsonl`` gets one line per step.
"""

from __future__ import annotations

import copy
import json
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

__all__ = ["completion_mask", "ptr_step", "train_ptr"]


def completion_mask(completion_ids: torch.Tensor, eos_id: int | None) -> torch.Tensor:
    """``(B, T)`` float mask: tokens up to and including the first EOS."""
    if eos_id is None:
        return torch.ones_like(completion_ids, dtype=torch.float32)
    is_eos = (completion_ids == eos_id).int()
    return ((torch.cumsum(is_eos, 1) - is_eos) == 0).float()


def _columns(records: list[dict[str, Any]], group_size: int) -> dict[str, list]:
    """Dataset columns repeated per rollout (TRL passes every column to reward functions)."""
    keys = sorted({k for r in records for k in r})
    return {k: [r.get(k) for r in records for _ in range(group_size)] for k in keys}


def ptr_step(policy: AudioTextPolicy, optimizer, batch: list[dict[str, Any]], audios: list, cfg: TrainConfig,
             reason_fn, step: int, ref_model=None) -> dict[str, float]:
    """One GRPO-PTR update on ``batch`` (P records, audio waveforms aligned). Returns the step's metrics."""
    G = cfg.group_size
    policy.model.eval()
    inputs, cids, texts = policy.generate(audios, cfg.max_new_tokens, cfg.temperature, num_return_sequences=G)
    cols = _columns(batch, G)
    fmt = torch.tensor(call_reward(format_reward, None, texts, **cols))  # (B,)
    acc = torch.tensor(call_reward(accuracy_reward, None, texts, **cols))  # (B,)
    state = SimpleNamespace(global_step=step)
    rsn = torch.tensor(call_reward(reason_fn, None, texts, trainer_state=state, **cols))  # (B,) = w * tau * r
    rewards = cfg.format_weight * fmt + cfg.outcome_weight * acc + rsn  # (B,)
    adv = compute_grpo_advantages(rewards, G)  # (B,)
    mask = completion_mask(cids, policy.tokenizer.eos_token_id)  # (B, T)

    policy.model.train()
    logprobs = policy.completion_logprobs(inputs, cids, cfg.temperature)  # (B, T)
    old = logprobs.detach()  # one update per generation batch: ratio 1, as TRL with num_iterations=1
    loss_tok, _ = compute_clipped_surrogate(logprobs, old, adv, cfg.epsilon)  # (B, T)
    kl = torch.zeros(())
    if ref_model is not None and cfg.beta > 0:
        with torch.no_grad():
            ref_lp = AudioTextPolicy(ref_model, policy.processor).completion_logprobs(inputs, cids, cfg.temperature)
        kl_tok = compute_k3_kl(logprobs, ref_lp)
        loss_tok = loss_tok + cfg.beta * kl_tok
        kl = (kl_tok * mask).sum() / mask.sum().clamp(min=1)
    loss = aggregate_loss(loss_tok, mask, cfg.loss_agg, cfg.max_new_tokens)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(policy.model.parameters(), 1.0)
    optimizer.step()
    st = reason_fn.last_stats
    return {"step": step, "loss": float(loss.detach()), "grad_norm": float(grad_norm), "reward": float(rewards.mean()),
            "format": float(fmt.mean()), "accuracy": float(acc.mean()), "reason_term": float(rsn.mean()),
            "w_t": st["weight"], "tau_mean": st["tau_mean"], "judge_calls": st["judge_calls"],
            "judged_mean": st["judged_mean"], "kl": float(kl.detach()), "completion_len": float(mask.sum(1).mean()),
            "sample": texts[0]}


def train_ptr(cfg: TrainConfig, policy: AudioTextPolicy | None = None, records: list[dict[str, Any]] | None = None,
              judge=None) -> dict[str, Any]:
    """Run ``cfg.steps`` GRPO-PTR steps; writes ``output_dir/metrics.jsonl`` (and the model if ``cfg.save``).

    Args:
        cfg: the run config.
        policy: defaults to :func:`~emotionthinker.policy.load_policy` of ``cfg.model``.
        records: defaults to :func:`~emotionthinker.data.load_emotioncot` of ``cfg.data``.
        judge: a judge callable; defaults to ``cfg.judge`` looked up by name.

    Returns:
        ``{"history": [per-step metrics], "judge_calls": total, "output_dir": str}``.
    """
    from rlcore.device import seed_everything

    from .data import load_emotioncot
    from .policy import load_policy
    from .prosody import load_audio

    seed_everything(cfg.seed)
    records = records if records is not None else load_emotioncot(cfg.data, cfg.audio_root or None)
    policy = policy or load_policy(cfg.model, cfg.device, cfg.dtype)
    ptr_cfg = PTRConfig(**{f: getattr(cfg, f) for f in PTRConfig.__dataclass_fields__})
    reason_fn = get_ptr_reasoning_reward(judge if judge is not None else cfg.judge, ptr_cfg, cfg.group_size)
    ref_model = copy.deepcopy(policy.model).eval() if cfg.beta > 0 else None
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=cfg.learning_rate)
    cache: dict[str, Any] = {}
    rng = random.Random(cfg.seed)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    history = []
    with (out / "metrics.jsonl").open("w", encoding="utf-8") as log:
        for step in range(cfg.steps):
            batch = rng.sample(records, min(cfg.prompts_per_step, len(records)))
            audios = []
            for r in batch:
                if r["audio_file"] not in cache:
                    cache[r["audio_file"]] = load_audio(r["audio_file"], policy.sample_rate)[0]
                audios.append(cache[r["audio_file"]])
            m = ptr_step(policy, optimizer, batch, audios, cfg, reason_fn, step, ref_model)
            history.append(m)
            log.write(json.dumps(m) + "\n")
            log.flush()
    if cfg.save:
        policy.model.save_pretrained(str(out / "final"))
        policy.processor.save_pretrained(str(out / "final"))
    return {"history": history, "judge_calls": reason_fn.total_judge_calls, "output_dir": str(out)}
