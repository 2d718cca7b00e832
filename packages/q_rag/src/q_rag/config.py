"""Typed configs for every command.

Defaults are the BabiLong/RULER column of the spec's hyperparameter table (official ``configs/algo`` + ``configs/training.yaml``); other columns are recipes under ``recipes/``.
"""

from __future__ import annotations

import dataclasses

from rlcore.cli import option

__all__ = ["TrainConfig", "IndexConfig", "RetrieveConfig", "EvalConfig", "DataConfig", "DEFAULT_ENCODER"]

DEFAULT_ENCODER = "default"  # -> rlcore.builtins.default_encoder_path() (offline all-MiniLM-L6-v2)
POSITIONS = ("relative", "absolute", "none")
BACKENDS = ("auto", "faiss", "numpy")


def _check(cond: bool, field: str, msg: str) -> None:
    if not cond:
        raise ValueError(f"{field}: {msg}")


def _check_common(cfg) -> None:
    if hasattr(cfg, "position"):
        _check(cfg.position in POSITIONS, "position", f"must be one of {POSITIONS}, got {cfg.position!r}")
    if hasattr(cfg, "backend"):
        _check(cfg.backend in BACKENDS, "backend", f"must be one of {BACKENDS}, got {cfg.backend!r}")
    if hasattr(cfg, "max_steps"):
        _check(cfg.max_steps >= 1, "max_steps", f"must be >= 1, got {cfg.max_steps}")


@dataclasses.dataclass
class TrainConfig:
    """``q-rag train``: PQN-style soft Q(lambda) training of the state/action embedders."""

    train_data: str = option("", "unified JSONL of training samples (see `q-rag data`)")
    eval_data: str = option("", "unified JSONL for evaluation/model selection (default: train_data)")
    data_format: str = option("jsonl", "loader for train/eval data: jsonl, hotpotqa, musique, ruler")
    output_dir: str = option("runs/q_rag", "checkpoints, best model and metrics.jsonl go here")
    encoder: str = option(DEFAULT_ENCODER, "base HF encoder (path or name); 'default' = offline all-MiniLM-L6-v2")
    position: str = option("relative", "position processor: relative (BabiLong), absolute, none (QA/NIAH)")
    max_state_tokens: int = option(64, "token limit per state piece (BabiLong 64, HotpotQA 220, MuSiQue 110)")
    max_action_tokens: int = option(64, "token limit per chunk (BabiLong 64, HotpotQA 220, MuSiQue 110)")
    max_steps: int = option(6, "retrieval steps per episode (BabiLong 6, NIAH 5, HotpotQA 2)")
    sort_by_index: bool = option(True, "render retrieved chunks in document order in the state (BabiLong)")
    penalize_extra_steps: bool = option(True, "terminal reward 0.5 + 0.5*|SF|/|retrieved| instead of 1")
    gamma: float = option(0.99, "discount (all configs 0.99)")
    lam: float = option(0.65, "lambda of the lambda-return (BabiLong 0.65, HotpotQA 0.5, MuSiQue 0.6)")
    alpha: float = option(0.01, "soft-Q temperature alpha_0 (BabiLong 0.01, HotpotQA 0.05, MuSiQue 0.005)")
    tau: float = option(0.1, "Polyak rate of the target encoders (BabiLong 0.1, QA 0.02)")
    top_k: int = option(5, "actions kept for sampling and the soft value (5)")
    lr: float = option(5e-5, "AdamW learning rate (BabiLong 5e-5)")
    weight_decay: float = option(0.01, "AdamW weight decay (BabiLong 0.01)")
    beta1: float = option(0.9, "AdamW beta1")
    beta2: float = option(0.98, "AdamW beta2")
    adam_eps: float = option(1e-6, "AdamW epsilon")
    warmup_steps: int = option(1000, "linear LR warm-up steps (1000)")
    schedule: str = option("linear", "LR decay after warm-up: linear or cosine")
    final_lr_fraction: float = option(0.0, "final LR / peak LR (BabiLong 0, QA 0.1)")
    total_steps: int = option(50_000, "optimizer steps (BabiLong 50k, QA 10k)")
    batch_size: int = option(64, "transitions per optimizer step (BabiLong 64)")
    accumulate_grads: int = option(1, "gradient accumulation micro-batches per step (HotpotQA 8)")
    n_envs: int = option(1, "parallel episodes; each update rolls batch_size/n_envs + 1 steps per env")
    learning_start: int = option(200, "the first 2*learning_start transitions act uniformly at random")
    grad_clip: float = option(2.0, "gradient-norm clip (2.0)")
    eval_interval: int = option(500, "optimizer steps between evaluations (500)")
    eval_episodes: int = option(1000, "evaluation episodes (1000)")
    checkpoint_interval: int = option(1000, "optimizer steps between resumable checkpoints")
    resume: bool = option(False, "resume from output_dir/checkpoint.pt when present")
    seed: int = option(42, "random seed (42)")
    device: str = option("auto", "torch device: auto, cpu, cuda, cuda:N")

    def __post_init__(self) -> None:
        _check_common(self)
        _check(bool(self.train_data), "train_data", "is required")
        for f in ("gamma", "lam"):
            _check(0.0 <= getattr(self, f) <= 1.0, f, f"must be in [0, 1], got {getattr(self, f)}")
        for f in ("alpha", "lr", "grad_clip"):
            _check(getattr(self, f) > 0, f, f"must be > 0, got {getattr(self, f)}")
        _check(0.0 < self.tau <= 1.0, "tau", f"must be in (0, 1], got {self.tau}")
        _check(self.schedule in ("linear", "cosine"), "schedule", f"must be linear or cosine, got {self.schedule!r}")
        _check(0.0 <= self.final_lr_fraction <= 1.0, "final_lr_fraction", "must be in [0, 1]")
        for f in ("top_k", "total_steps", "batch_size", "accumulate_grads", "n_envs", "eval_interval",
                  "eval_episodes", "checkpoint_interval", "max_state_tokens", "max_action_tokens"):
            _check(getattr(self, f) >= 1, f, f"must be >= 1, got {getattr(self, f)}")
        _check(self.batch_size % self.n_envs == 0, "batch_size", f"must be divisible by n_envs={self.n_envs}")
        _check(self.batch_size % self.accumulate_grads == 0, "batch_size",
               f"must be divisible by accumulate_grads={self.accumulate_grads}")
        _check(self.warmup_steps >= 0 and self.learning_start >= 0, "warmup_steps", "must be >= 0")


@dataclasses.dataclass
class DataConfig:
    """``q-rag data``: build BabiLong-style / NIAH samples (built-in generator or bAbI files) as unified JSONL."""

    output: str = option("", "output JSONL path")
    task: str = option("two_hop", "synthetic task: single, two_hop, before, niah; or 'babi' with --babi-file")
    babi_file: str = option("", "bAbI-format file (qa*_train.txt) when task=babi")
    filler_file: str = option("", "filler text (e.g. a PG19 book); default: built-in filler sentences")
    n: int = option(100, "number of samples")
    tokens: int = option(1000, "target document length in tokens (1K=50 sentences, 1M=40k, 10M=400k)")
    n_facts: int = option(8, "story facts per synthetic sample")
    seed: int = option(0, "random seed")

    def __post_init__(self) -> None:
        _check(bool(self.output), "output", "is required")
        _check(self.task in ("single", "two_hop", "before", "niah", "babi"), "task",
               f"must be single, two_hop, before, niah or babi, got {self.task!r}")
        _check(self.task != "babi" or bool(self.babi_file), "babi_file", "is required when task=babi")
        _check(self.n >= 1 and self.tokens >= 1, "n", "n and tokens must be >= 1")


@dataclasses.dataclass
class IndexConfig:
    """``q-rag index``: compute and cache chunk embeddings of every document once."""

    data: str = option("", "dataset file")
    data_format: str = option("jsonl", "jsonl, hotpotqa, musique, ruler")
    model: str = option(DEFAULT_ENCODER, "trained Q-RAG dir (best/) or a base encoder; 'default' = MiniLM")
    position: str = option("relative", "position processor when `model` is a base encoder")
    cache_dir: str = option(".q_rag_cache", "embedding cache directory")
    batch_size: int = option(256, "chunks per encoder batch")
    max_chunks: int = option(2_000_000, "refuse documents with more chunks (memory bound)")
    device: str = option("auto", "torch device")

    def __post_init__(self) -> None:
        _check_common(self)
        _check(bool(self.data), "data", "is required")
        _check(self.batch_size >= 1, "batch_size", "must be >= 1")


@dataclasses.dataclass
class RetrieveConfig(IndexConfig):
    """``q-rag retrieve``: multi-step greedy retrieval; writes one JSON line per question."""

    output: str = option("retrieved.jsonl", "output JSONL (id, retrieved ids, q-values, metrics)")
    max_steps: int = option(6, "retrieval steps")
    sort_by_index: bool = option(True, "retrieved chunks in document order in the state")
    backend: str = option("auto", "search backend: auto (faiss for large docs), faiss, numpy")
    max_index_gb: float = option(8.0, "largest in-RAM faiss index")


@dataclasses.dataclass
class EvalConfig(RetrieveConfig):
    """``q-rag eval``: support-fact recall/EM (and reader accuracy) by context length, plus a PNG plot."""

    data: str = option("", "comma-separated dataset files, one per context length")
    output: str = option("eval", "output directory (metrics.json, accuracy_vs_length.png)")
    reader: str = option("", "reader LM (HF path or builtin:name); empty = retrieval metrics only")
    max_new_tokens: int = option(32, "reader answer tokens (32)")
    qvalue_threshold: float | None = option(None, "Q-value early stopping threshold (README example 0.5)")
