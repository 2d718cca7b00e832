r"""Train a Bradley-Terry writing RM on preference pairs with TRL's ``RewardTrainer`` (``longwriter-zero train-rm``).

Loss (TRL, the paper's Writing-RM objective): :math:`-\mathbb{E}\,\log\sigma(r(x, y_w) - r(x, y_l))`.

Pairs are tokenized here with :func:`longwriter_zero.writing_reward.encode_rm_input`, the function the Writing
reward scores with (question head, answer truncated by the same policy, EOS), and handed to TRL pre-tokenized
(``chosen_ids``/``rejected_ids``): the RM is trained on exactly the layout it is later scored on, and a long pair is
truncated the same way scoring truncates it instead of being dropped (the number truncated is reported).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlcore.io import DataError, read_jsonl

from .writing_reward import check_rm_tokenizer, encode_rm_input

__all__ = ["load_pairs", "tokenize_pairs", "train_reward_model"]


def load_pairs(path: str) -> list[dict[str, str]]:
    """Preference pairs ``{prompt?, chosen, rejected}`` (strings; chosen != rejected).

    Raises:
        DataError: a malformed line, a missing/non-string field, or identical chosen/rejected (record named).
    """
    pairs = []
    for i, rec in enumerate(read_jsonl(path, required=("chosen", "rejected")), 1):
        fields = ["chosen", "rejected"] + (["prompt"] if "prompt" in rec else [])
        for k in fields:
            if not isinstance(rec[k], str) or not rec[k].strip():
                raise DataError(f"{path}: record {i}: field {k!r} must be a non-empty string")
        if rec["chosen"] == rec["rejected"]:
            raise DataError(f"{path}: record {i}: chosen and rejected are identical")
        pairs.append({k: rec[k] for k in fields})
    return pairs


def tokenize_pairs(pairs: list[dict[str, str]], tokenizer: Any, max_length: int, max_question_tokens: int = 512,
                   truncation: str = "head_tail") -> dict[str, Any]:
    """``{"rows": [{"chosen_ids", "rejected_ids"}], "truncated": n}`` in the scoring layout (see module docstring)."""
    rows, truncated = [], 0
    for p in pairs:
        q = p.get("prompt", "")
        ids = {k: encode_rm_input(tokenizer, q, p[k], max_length, max_question_tokens, truncation)
               for k in ("chosen", "rejected")}
        full = {k: encode_rm_input(tokenizer, q, p[k], 10**9, 10**9, truncation) for k in ("chosen", "rejected")}
        truncated += any(len(ids[k]) < len(full[k]) for k in ids)
        rows.append({"chosen_ids": ids["chosen"], "rejected_ids": ids["rejected"]})
    return {"rows": rows, "truncated": truncated}


def train_reward_model(cfg: Any) -> dict[str, Any]:
    """Train and save the RM under ``cfg.output_dir``; returns the path, pairs used and the final loss."""
    from datasets import Dataset
    from rlcore.builtins import resolve
    from rlcore.checkpoint import resolve_resume
    from rlcore.device import seed_everything
    from rlcore.training import is_main_process, preflight_launch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    seed_everything(cfg.seed)
    preflight_launch()
    pairs = load_pairs(cfg.input)
    resume = resolve_resume(cfg.resume, cfg.output_dir)
    path = resolve(cfg.model)
    tok = AutoTokenizer.from_pretrained(path)
    check_rm_tokenizer(tok, cfg.model, cfg.pad_with_eos)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    model.config.pad_token_id = tok.pad_token_id
    cpu = cfg.device == "cpu"
    args = RewardConfig(
        output_dir=cfg.output_dir, max_length=cfg.max_length, learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.num_train_epochs, max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        center_rewards_coefficient=cfg.center_rewards_coefficient or None, seed=cfg.seed, report_to="none",
        logging_steps=1, save_strategy="steps" if cfg.save_steps else "no", save_steps=cfg.save_steps or 500,
        disable_tqdm=True, **({"use_cpu": True, "bf16": False} if cpu else {}),
    )
    rows = tokenize_pairs(pairs, tok, cfg.max_length, cfg.max_question_tokens, cfg.truncation)
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows["rows"]),
                            processing_class=tok)
    kept = len(trainer.train_dataset)
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    out = Path(cfg.output_dir) / "final"
    trainer.save_model(str(out))
    if is_main_process():
        tok.save_pretrained(str(out))
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"model": str(out), "pairs": len(pairs), "pairs_used": kept, "pairs_truncated": rows["truncated"],
            "final_loss": losses[-1] if losses else None}
