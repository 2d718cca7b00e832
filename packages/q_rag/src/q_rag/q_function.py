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

__all__ = ["QFunction", "POOL_SCALE"]

POOL_SCALE = 10.0  # official code divides the mean-pooled embedding by 10 (BERT-style encoders)
CONFIG_NAME = "q_rag.json"


class QFunction(nn.Module):
    """State encoder ``E_s`` + action encoder ``E_a`` (no weight sharing) with a position processor.

    Args:
        state_encoder: an HF encoder (``last_hidden_state``), e.g. ``AutoModel.from_pretrained(...)``.
        action_encoder: a second encoder with the same hidden size.
        tokenizer: the encoders' tokenizer.
        position: position processor name (``relative``, ``absolute``, ``none``).
        max_state_tokens: per-piece token limit of the state text (BabiLong 64).
        max_action_tokens: token limit of a chunk (BabiLong 64).
        rope_theta: RoPE base.
    """

    def __init__(self, state_encoder: nn.Module, action_encoder: nn.Module, tokenizer, position: str = "relative",
                 max_state_tokens: int = 64, max_action_tokens: int = 64, rope_theta: float = 10000.0):
        super().__init__()
        get_position_processor(position)  # validates the name
        self.state_encoder = state_encoder.eval()
        self.action_encoder = action_encoder.eval()
        self.tokenizer = tokenizer
        self.position = position
        self.max_state_tokens = max_state_tokens
        self.max_action_tokens = max_action_tokens
        self.rope_theta = rope_theta
        hidden = state_encoder.config.hidden_size
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

    @classmethod
    def from_pretrained(cls, path: str | Path, **kw) -> QFunction:
        """From a base HF encoder dir/name (both encoders copies of it) or a saved Q-RAG dir (:meth:`save`)."""
        from transformers import AutoModel, AutoTokenizer

        p = Path(path)
        if (p / CONFIG_NAME).is_file():
            meta = json.loads((p / CONFIG_NAME).read_text())
            meta.update(kw)
            tok = AutoTokenizer.from_pretrained(str(p / "tokenizer"))
            return cls(AutoModel.from_pretrained(str(p / "state_encoder")),
                       AutoModel.from_pretrained(str(p / "action_encoder")), tok, **meta)
        if not p.exists() and str(path).startswith(("/", ".")):
            raise FileNotFoundError(f"encoder path not found: {path}")
        tok = AutoTokenizer.from_pretrained(str(path))
        return cls.from_encoder(AutoModel.from_pretrained(str(path)), tok, **kw)

    def settings(self) -> dict:
        """The non-weight settings (saved next to the weights)."""
        return dict(position=self.position, max_state_tokens=self.max_state_tokens,
                    max_action_tokens=self.max_action_tokens, rope_theta=self.rope_theta)

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

    def _pool(self, encoder: nn.Module, rows: list[list[int]]) -> torch.Tensor:
        ids, mask = self._pad(rows)  # (B, T)
        hidden = encoder(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, T, d)
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0) / POOL_SCALE  # (B, d)

    def _piece_ids(self, texts: Sequence[str], limit: int) -> list[list[int]]:
        enc = self.tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=limit)
        return enc["input_ids"]

    def state_token_ids(self, questions: Sequence[str], retrieved: Sequence[Sequence[str]]) -> list[list[int]]:
        """Token ids of ``q [SEP] c1 [SEP] c2 ...`` per state (pieces truncated, total capped at the encoder max)."""
        rows = []
        for q, chunks in zip(questions, retrieved, strict=True):
            pieces = self._piece_ids([q, *chunks], self.max_state_tokens)
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
            m = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            out.append((hidden * m).sum(1) / m.sum(1).clamp_min(1.0) / POOL_SCALE)  # (B, d)
        return torch.cat(out)

    def rotate(self, action_emb: torch.Tensor, positions) -> torch.Tensor:
        """RoPE on each half of ``action_emb (..., d)`` at ``positions (...,)``; identity when positions is None."""
        if positions is None:
            return action_emb
        pos = torch.as_tensor(positions, device=action_emb.device)
        return compute_rope(action_emb, pos, self.rope_theta)

    def positions(self, n_chunks: int, retrieved: Sequence[int]):
        """Positions of all chunks (``(N,)`` int64 numpy) under this Q-function's processor, or None."""
        return get_position_processor(self.position)(n_chunks, retrieved)

    def q_values(self, state_emb: torch.Tensor, action_emb: torch.Tensor, positions=None):
        """``(q1, q2)`` of paired ``state_emb (B, d)`` and ``action_emb (B, d)`` rotated at ``positions (B,)``."""
        return compute_twin_q(state_emb, self.rotate(action_emb, positions))
