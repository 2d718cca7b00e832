"""Sampling answers with the paper's prompt and stop strings (``longwriter-zero generate``)."""

from __future__ import annotations

from typing import Any

from .prompts import STOP_STRINGS, build_prompt, extract_answer

__all__ = ["stream_answer", "generate_file"]


def _load(cfg: Any):
    from rlcore.builtins import load_model_and_tokenizer
    from rlcore.device import seed_everything

    seed_everything(cfg.seed)
    return load_model_and_tokenizer(cfg.model, device=None if cfg.device == "auto" else cfg.device)


def _gen_kwargs(cfg: Any, tok: Any) -> dict[str, Any]:
    return dict(max_new_tokens=cfg.max_new_tokens, do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p,
                top_k=0, stop_strings=list(STOP_STRINGS), tokenizer=tok, pad_token_id=tok.pad_token_id)


def stream_answer(cfg: Any) -> str:
    """Generate one answer, streaming text to stdout as it is produced; returns the completion."""
    import torch
    from transformers import TextStreamer

    model, tok = _load(cfg)
    prompt = build_prompt(cfg.question, cfg.think, cfg.template or None)
    enc = tok([prompt], return_tensors="pt").to(model.device)
    streamer = TextStreamer(tok, skip_prompt=True, skip_special_tokens=True)
    with torch.no_grad():
        out = model.generate(**enc, streamer=streamer, **_gen_kwargs(cfg, tok))
    return tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)


def generate_file(cfg: Any) -> int:
    """Answer every ``question`` of ``cfg.input``; writes question, completion, answer (+ the input fields)."""
    import torch
    from rlcore.io import DataError, read_jsonl, write_jsonl

    records = read_jsonl(cfg.input)
    for i, rec in enumerate(records, 1):
        if not isinstance(rec.get("question"), str) or not rec["question"].strip():
            raise DataError(f"{cfg.input}: record {i}: field 'question' must be a non-empty string")
    model, tok = _load(cfg)
    out_records = []
    for rec in records:
        enc = tok([build_prompt(rec["question"], cfg.think, cfg.template or None)], return_tensors="pt").to(model.device)
        with torch.no_grad():
            out = model.generate(**enc, **_gen_kwargs(cfg, tok))
        text = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        out_records.append({**rec, "completion": text, "answer": extract_answer(text)})
    return write_jsonl(cfg.output, out_records)
