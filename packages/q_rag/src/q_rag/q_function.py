"""The Q-function: separate state and action (chunk) encoders, mean pooling / 10, RoPE on actions, twin heads.

``Q(s, a_j) = <E_s(s), RoPE(E_a(c_j), pos_j)>`` split into two halves (twin heads, :func:`compute_twin_q`).
The state text is ``q [SEP] c_i1 [SEP] c_i2 ...``: each piece tokenized on its own, truncated to
``max_state_tokens``, joined with the tokenizer's separator (CLS in front when the tokenizer has one).
Encoders run in eval mode (no dropout), as ``from_pretrained`` leaves them in the official code.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from .positions import get_position_processor
from .rope import compute_rope
from .soft_q import compute_twin_q

__all__ = ["QFunction", "POOL_SCALE", "POOLINGS", "DEFAULT_SETTINGS", "resolve_settings"]

POOL_SCALE = 10.0  # official code divides the mean-pooled embedding by 10 (BERT-style encoders)
POOLINGS = ("mean", "last")
CONFIG_NAME = "q_rag.json"
# Settings saved next to the weights and restored on load (BabiLong defaults for a fresh base encoder).
DEFAULT_SETTINGS = dict(position="relative", step_size=20, pooling="mean", max_state_tokens=64,
                        max_action_tokens=64, rope_theta=10000.0, sort_by_index=True)


def resolve_settings(saved: dict | None, requested: dict, source: str = "the model") -> dict:
    """Model settings: ``saved`` (a trained model's) or the defaults, with ``requested`` values that are not None.

    A requested value that contradicts a saved one is an error: a model is used with the settings it was trained
    with (e.g. a ``--position none`` model must not silently retrieve with relative positions).

    Raises:
        ValueError: a non-None requested value differs from the saved one (names the flag and ``source``).
    """
    unknown = sorted(set(requested) - set(DEFAULT_SETTINGS))
    if unknown:
        raise ValueError(f"unknown model setting(s) {unknown}; valid: {sorted(DEFAULT_SETTINGS)}")
    out = {**DEFAULT_SETTINGS, **(saved or {})}
    for k, v in requested.items():
        if v is None:
            continue
        if saved is not None and k in saved and saved[k] != v:
            raise ValueError(f"--{k.replace('_', '-')} {v} contradicts {k}={saved[k]!r} saved with {source}; "
                             f"drop the flag (the saved value is used)")
        out[k] = v
    return out


class QFunction(nn.Module):
    """State encoder ``E_s`` + action encoder ``E_a`` (no weight sharing) with a position processor.

    Args:
        state_encoder: an HF encoder (``last_hidden_state``), e.g. ``AutoModel.from_pretrained(...)``.
        action_encoder: a second encoder with the same hidden size.
        tokenizer: the encoders' tokenizer.
        position: position processor name (``relative``, ``absolute``, ``none``).
        max_state_tokens: per-piece token limit of the state text, special tokens included (BabiLong 64).
        max_action_tokens: token limit of a chunk, special tokens included (BabiLong 64).
        rope_theta: RoPE base.
        step_size: segment offset of the ``relative`` processor (20).
        pooling: ``mean`` (mean over the mask / 10, BERT-style, official default) or ``last`` (last real token,
            L2-normalised: the official Qwen3-Embedding variant).
        sort_by_index: retrieved chunks rendered in document order in the state (BabiLong) or retrieval order.
    """

    def __init__(self, state_encoder: nn.Module, action_encoder: nn.Module, tokenizer, position: str = "relative",
                 max_state_tokens: int = 64, max_action_tokens: int = 64, rope_theta: float = 10000.0,
                 step_size: int = 20, pooling: str = "mean", sort_by_index: bool = True, dim: int | None = None):
        super().__init__()
        get_position_processor(position)  # validates the name
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if step_size < 1:
            raise ValueError(f"step_size must be >= 1, got {step_size}")
        self.step_size, self.pooling, self.sort_by_index = int(step_size), pooling, bool(sort_by_index)
        self.state_encoder = state_encoder.eval()
        self.action_encoder = action_encoder.eval()
        self.tokenizer = tokenizer
        self.position = position
        self.max_state_tokens = max_state_tokens
        self.max_action_tokens = max_action_tokens
        self.rope_theta = rope_theta
        hidden = state_encoder.config.hidden_size
        if action_encoder.config.hidden_size != hidden:
            raise ValueError(f"state encoder dim {hidden} != action encoder dim {action_encoder.config.hidden_size}")
        if dim is not None and dim != hidden:
            raise ValueError(f"the saved model has dim {dim} but its encoders have hidden size {hidden}")
        if hidden % 4:
            raise ValueError(f"encoder hidden size must be divisible by 4 (twin heads x RoPE pairs), got {hidden}")
        self.dim = hidden
        self.max_len = int(getattr(state_encoder.config, "max_position_embeddings", 512))
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.sep_id = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
        self.cls_id = tokenizer.cls_token_id
        if self.sep_id is None:
            raise ValueError("the encoder tokenizer needs a sep or eos token to join state pieces")

    # construction / persistence --------------------------------------------------------------------------
    @classmethod
    def from_encoder(cls, encoder: nn.Module, tokenizer, **kw) -> QFunction:
        """Both encoders initialised from the same pretrained ``encoder`` (copied, not shared)."""
        return cls(encoder, copy.deepcopy(encoder), tokenizer, **kw)

    @staticmethod
    def saved_settings(path: str | Path) -> dict | None:
        """The settings saved in a Q-RAG dir (``q_rag.json``), or None when ``path`` is not one."""
        f = Path(path) / CONFIG_NAME
        if not f.is_file():
            return None
        try:
            meta = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{f}: not valid JSON ({e})") from e
        if not isinstance(meta, dict):
            raise ValueError(f"{f}: must hold a JSON object")
        return meta

    @classmethod
    def from_pretrained(cls, path: str | Path, **kw) -> QFunction:
        """From a base HF encoder dir/name (both encoders copies of it) or a saved Q-RAG dir (:meth:`save`).

        Keyword settings that are None mean "from the model"; for a saved dir they must agree with the saved
        settings (:func:`resolve_settings`), for a base encoder they override :data:`DEFAULT_SETTINGS`.
        """
        from transformers import AutoModel, AutoTokenizer

        p = Path(path)
        saved = cls.saved_settings(p)
        if saved is not None:
            meta = resolve_settings(saved, kw, f"the model ({p / CONFIG_NAME})")
            tok = AutoTokenizer.from_pretrained(str(p / "tokenizer"))
            return cls(AutoModel.from_pretrained(str(p / "state_encoder")),
                       AutoModel.from_pretrained(str(p / "action_encoder")), tok, **meta)
        if not p.exists() and str(path).startswith(("/", ".")):
            raise FileNotFoundError(f"encoder path not found: {path}")
        tok = AutoTokenizer.from_pretrained(str(path))
        return cls.from_encoder(AutoModel.from_pretrained(str(path)), tok, **resolve_settings(None, kw))

    def settings(self) -> dict:
        """The non-weight settings (saved next to the weights; restored by :meth:`from_pretrained`)."""
        return dict(position=self.position, step_size=self.step_size, pooling=self.pooling,
                    max_state_tokens=self.max_state_tokens, max_action_tokens=self.max_action_tokens,
                    rope_theta=self.rope_theta, sort_by_index=self.sort_by_index, dim=self.dim)

    def save(self, path: str | Path) -> None:
        """Write both encoders, the tokenizer and the settings in a directory loadable by :meth:`from_pretrained`."""
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        self.state_encoder.save_pretrained(str(p / "state_encoder"))
        self.action_encoder.save_pretrained(str(p / "action_encoder"))
        self.tokenizer.save_pretrained(str(p / "tokenizer"))
        (p / CONFIG_NAME).write_text(json.dumps(self.settings(), indent=2))

    @property
    def device(self) -> torch.device:
        return next(self.state_encoder.parameters()).device

    # encoding --------------------------------------------------------------------------------------------
    def _pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(1, max(len(r) for r in rows))
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, : len(r)] = 1
        return ids.to(self.device), mask.to(self.device)

    def pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``hidden (B, T, d)`` -> ``(B, d)``: mean over ``mask (B, T)`` / 10, or the last real token L2-normalised."""
        if self.pooling == "last":
            last = (mask.sum(1) - 1).clamp_min(0)  # right padding: index of the last real token
            out = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
            return torch.nn.functional.normalize(out, p=2, dim=-1)
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0) / POOL_SCALE

    def _pool(self, encoder: nn.Module, rows: list[list[int]]) -> torch.Tensor:
        ids, mask = self._pad(rows)  # (B, T)
        hidden = encoder(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, T, d)
        return self.pool(hidden, mask)  # (B, d)

    def _piece_ids(self, texts: Sequence[str], limit: int) -> list[list[int]]:
        enc = self.tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=limit)
        return enc["input_ids"]

    def state_token_ids(self, questions: Sequence[str], retrieved: Sequence[Sequence[str]]) -> list[list[int]]:
        """Token ids of ``[CLS] q [SEP] c1 [SEP] c2 ... [SEP]`` per state, total capped at the encoder max.

        As in the official code, each piece is truncated to ``max_state_tokens`` *including* the special tokens a
        single sequence gets (so ``max_state_tokens - 2`` text tokens for BERT-style tokenizers).
        """
        rows = []
        limit = max(1, self.max_state_tokens - self.tokenizer.num_special_tokens_to_add(pair=False))
        for q, chunks in zip(questions, retrieved, strict=True):
            pieces = self._piece_ids([q, *chunks], limit)
            row = [self.cls_id] if self.cls_id is not None else []
            for p in pieces:
                row += [*p, self.sep_id]
            rows.append(row[: self.max_len])
        return rows

    def action_token_ids(self, chunks: Sequence[str]) -> list[list[int]]:
        """Token ids of each chunk with the tokenizer's special tokens, truncated to ``max_action_tokens``."""
        limit = min(self.max_action_tokens, self.max_len)
        return self.tokenizer(list(chunks), truncation=True, max_length=limit)["input_ids"]

    def embed_states(self, questions: Sequence[str], retrieved: Sequence[Sequence[str]],
                     encoder: nn.Module | None = None) -> torch.Tensor:
        """``E_s`` of each state, ``(B, d)``."""
        return self._pool(encoder or self.state_encoder, self.state_token_ids(questions, retrieved))

    def embed_actions(self, chunks: Sequence[str], encoder: nn.Module | None = None,
                      batch_size: int = 256) -> torch.Tensor:
        """Unrotated ``E_a`` of each chunk, ``(N, d)``, in batches."""
        enc = encoder or self.action_encoder
        if not chunks:
            return torch.zeros((0, self.dim), device=self.device)
        out = []
        limit = min(self.max_action_tokens, self.max_len)
        for i in range(0, len(chunks), batch_size):
            batch = self.tokenizer(list(chunks[i : i + batch_size]), truncation=True, max_length=limit,
                                   padding=True, padding_side="right", return_tensors="pt").to(self.device)
            hidden = enc(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            out.append(self.pool(hidden, batch["attention_mask"]))  # (B, d)
        return torch.cat(out)

    def rotate(self, action_emb: torch.Tensor, positions) -> torch.Tensor:
        """RoPE on each half of ``action_emb (..., d)`` at ``positions (...,)``; identity when positions is None."""
        if positions is None:
            return action_emb
        pos = torch.as_tensor(positions, device=action_emb.device)
        return compute_rope(action_emb, pos, self.rope_theta)

    def positions(self, n_chunks: int, retrieved: Sequence[int]):
        """Positions of all chunks (``(N,)`` int64 numpy) under this Q-function's processor, or None."""
        if self.position == "relative":
            return get_position_processor("relative")(n_chunks, retrieved, step_size=self.step_size)
        return get_position_processor(self.position)(n_chunks, retrieved)

    def q_values(self, state_emb: torch.Tensor, action_emb: torch.Tensor, positions=None):
        """``(q1, q2)`` of paired ``state_emb (B, d)`` and ``action_emb (B, d)`` rotated at ``positions (B,)``."""
        return compute_twin_q(state_emb, self.rotate(action_emb, positions))
