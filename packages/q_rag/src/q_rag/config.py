"""Typed configs for every command.

Defaults are the BabiLong/RULER column of the spec's hyperparameter table (official ``configs/algo`` + ``configs/training.yaml``); other columns are recipes under ``recipes/``.
"""

from __future__ import annotations

import dataclasses

from rlcore.backends import BACKEND_HELP  # torch-free: `q-rag --help` stays light
from rlcore.cli import option

__all__ = ["TrainConfig", "DocConfig", "IndexConfig", "SearchConfig", "RetrieveConfig", "EvalConfig", "DataConfig",
           "DEFAULT_ENCODER", "model_settings"]

DEFAULT_ENCODER = "default"  # -> rlcore.builtins.default_encoder_path() (offline all-MiniLM-L6-v2)
POSITIONS = ("relative", "absolute", "none")
POOLINGS = ("mean", "last")
SEARCH_BACKENDS = ("auto", "fp16", "numpy", "faiss")
GEN_BACKENDS = ("hf", "vllm")
READER_TASKS = ("auto", "qa1", "qa2", "qa3", "qa4", "qa5")
FROM_MODEL = " (default: the value saved with a trained model, else {})"


def _check(cond: bool, field: str, msg: str) -> None:
    if not cond:
        raise ValueError(f"{field}: {msg}")


def _check_common(cfg) -> None:
    if getattr(cfg, "position", None) is not None:
        _check(cfg.position in POSITIONS, "position", f"must be one of {POSITIONS}, got {cfg.position!r}")
    if getattr(cfg, "pooling", None) is not None:
        _check(cfg.pooling in POOLINGS, "pooling", f"must be one of {POOLINGS}, got {cfg.pooling!r}")
    for f in ("step_size", "max_state_tokens", "max_action_tokens"):
        if getattr(cfg, f, None) is not None:
            _check(getattr(cfg, f) >= 1, f, f"must be >= 1, got {getattr(cfg, f)}")
    if hasattr(cfg, "search_backend"):
        _check(cfg.search_backend in SEARCH_BACKENDS, "search_backend",
               f"must be one of {SEARCH_BACKENDS}, got {cfg.search_backend!r}")
    if hasattr(cfg, "max_steps"):
        _check(cfg.max_steps >= 1, "max_steps", f"must be >= 1, got {cfg.max_steps}")


def model_settings(cfg) -> dict:
    """The model-setting fields of ``cfg`` (None = from the model; see :func:`q_rag.q_function.resolve_settings`)."""
    names = ("position", "step_size", "pooling", "max_state_tokens", "max_action_tokens", "sort_by_index")
    return {n: getattr(cfg, n) for n in names if hasattr(cfg, n)}


@dataclasses.dataclass
class TrainConfig:
    """``q-rag train``: PQN-style soft Q(lambda) training of the state/action embedders."""

    input: str = option("", "unified JSONL of training samples (see `q-rag data`)")
    eval_input: str = option("", "unified JSONL for evaluation/model selection (default: input)")
    data_format: str = option("jsonl", "loader for train/eval data: jsonl, hotpotqa, musique, ruler")
    output_dir: str = option("runs/q_rag", "checkpoints, best model and metrics.jsonl go here")
    model: str = option(DEFAULT_ENCODER, "base HF encoder (path or name) or a saved Q-RAG dir to continue from; "
                        "'default' = offline all-MiniLM-L6-v2")
    position: str | None = option(None, "position processor: relative (BabiLong), absolute, none (QA/NIAH)"
                                  + FROM_MODEL.format("relative"))
    step_size: int | None = option(None, "relative positions: offset between segments" + FROM_MODEL.format(20))
    pooling: str | None = option(None, "mean (mean/10, BERT-style) or last (last token + L2, Qwen3-Embedding)"
                                 + FROM_MODEL.format("mean"))
    max_state_tokens: int | None = option(None, "token limit per state piece (BabiLong 64, HotpotQA 220, MuSiQue "
                                          "110)" + FROM_MODEL.format(64))
    max_action_tokens: int | None = option(None, "token limit per chunk (BabiLong 64, HotpotQA 220, MuSiQue 110)"
                                           + FROM_MODEL.format(64))
    max_steps: int = option(6, "retrieval steps per episode (BabiLong 6, NIAH 5, HotpotQA 2)")
    sort_by_index: bool | None = option(None, "render retrieved chunks in document order in the state (BabiLong)"
                                        + FROM_MODEL.format(True))
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
    save_steps: int = option(1000, "optimizer steps between resumable checkpoints (0 = only at the end)")
    resume: str | None = option(None, "resume: 'latest' (newest output_dir/checkpoint-N, or start fresh) or a path")
    seed: int = option(42, "random seed (42)")
    device: str = option("auto", "torch device: auto, cpu, cuda, cuda:N")

    def __post_init__(self) -> None:
        _check_common(self)
        _check(bool(self.input), "input", "is required")
        for f in ("gamma", "lam"):
            _check(0.0 <= getattr(self, f) <= 1.0, f, f"must be in [0, 1], got {getattr(self, f)}")
        for f in ("alpha", "lr", "grad_clip"):
            _check(getattr(self, f) > 0, f, f"must be > 0, got {getattr(self, f)}")
        _check(0.0 < self.tau <= 1.0, "tau", f"must be in (0, 1], got {self.tau}")
        _check(self.schedule in ("linear", "cosine"), "schedule", f"must be linear or cosine, got {self.schedule!r}")
        _check(0.0 <= self.final_lr_fraction <= 1.0, "final_lr_fraction", "must be in [0, 1]")
        for f in ("top_k", "total_steps", "batch_size", "accumulate_grads", "n_envs", "eval_interval",
                  "eval_episodes"):
            _check(getattr(self, f) >= 1, f, f"must be >= 1, got {getattr(self, f)}")
        _check(self.batch_size % self.n_envs == 0, "batch_size", f"must be divisible by n_envs={self.n_envs}")
        _check(self.batch_size % self.accumulate_grads == 0, "batch_size",
               f"must be divisible by accumulate_grads={self.accumulate_grads}")
        _check(self.warmup_steps >= 0 and self.learning_start >= 0, "warmup_steps", "must be >= 0")
        _check(self.save_steps >= 0, "save_steps", f"must be >= 0, got {self.save_steps}")


@dataclasses.dataclass
class DataConfig:
    """``q-rag data``: build BabiLong-style / NIAH samples (built-in generator or bAbI files) as unified JSONL."""

    output: str = option("", "output JSONL path")
    task: str = option("two_hop", "synthetic task: single, two_hop, before, niah; or 'babi' with --babi-input")
    babi_input: str = option("", "bAbI-format file (qa*_train.txt) when task=babi")
    filler_input: str = option("", "filler text (e.g. a PG19 book); default: built-in filler sentences")
    n: int = option(100, "number of samples")
    tokens: int = option(1000, "target document length in tokens (1K=50 sentences, 1M=40k, 10M=400k)")
    n_facts: int = option(8, "story facts per synthetic sample")
    seed: int = option(0, "random seed")

    def __post_init__(self) -> None:
        _check(bool(self.output), "output", "is required")
        _check(self.task in ("single", "two_hop", "before", "niah", "babi"), "task",
               f"must be single, two_hop, before, niah or babi, got {self.task!r}")
        _check(self.task != "babi" or bool(self.babi_input), "babi_input", "is required when task=babi")
        _check(self.n >= 1 and self.tokens >= 1, "n", "n and tokens must be >= 1")


@dataclasses.dataclass
class DocConfig:
    """Fields shared by ``index``, ``retrieve`` and ``eval``: documents, model, model settings, encoding."""

    input: str = option("", "dataset file")
    data_format: str = option("jsonl", "jsonl, hotpotqa, musique, ruler")
    model: str = option(DEFAULT_ENCODER, "trained Q-RAG dir (best/), an official Q-RAG run dir (config.yaml + "
                        "model_best.pt) or a base encoder; 'default' = MiniLM")
    base_model: str = option("", "official run dirs only: local dir of the base encoder named in config.yaml "
                             "(tokenizer + architecture); default: that name")
    position: str | None = option(None, "position processor (relative, absolute, none); must match a trained "
                                  "model's" + FROM_MODEL.format("relative"))
    step_size: int | None = option(None, "relative positions: offset between segments" + FROM_MODEL.format(20))
    pooling: str | None = option(None, "mean or last" + FROM_MODEL.format("mean"))
    max_state_tokens: int | None = option(None, "token limit per state piece" + FROM_MODEL.format(64))
    max_action_tokens: int | None = option(None, "token limit per chunk" + FROM_MODEL.format(64))
    cache_max_gb: float = option(20.0, "cache size cap; least-recently-used entries are evicted (0: no cap)")
    batch_size: int = option(256, "chunks per encoder batch (length-sorted)")
    encode_workers: int = option(2, "encoder threads sharing the torch thread budget (2: 2.2x over the old path "
                                 "on 2 cores, README)")
    max_chunks: int = option(2_000_000, "refuse documents with more chunks (memory bound)")
    device: str = option("auto", "torch device: auto, cpu, cuda, cuda:N")

    def __post_init__(self) -> None:
        _check_common(self)
        _check(bool(self.input), "input", "is required")
        _check(self.batch_size >= 1, "batch_size", "must be >= 1")
        _check(self.encode_workers >= 1, "encode_workers", "must be >= 1")
        _check(self.cache_max_gb >= 0, "cache_max_gb", "must be >= 0 (0: no cap)")


@dataclasses.dataclass
class IndexConfig(DocConfig):
    """``q-rag index``: compute and cache chunk embeddings of every document once."""

    output_dir: str = option(".q_rag_cache", "embedding cache directory to fill (retrieve/eval: --cache-dir)")


@dataclasses.dataclass
class SearchConfig(DocConfig):
    """Fields shared by ``retrieve`` and ``eval``."""

    cache_dir: str = option(".q_rag_cache", "embedding cache directory (filled by index, or here on first use)")

    max_steps: int = option(6, "retrieval steps")
    sort_by_index: bool | None = option(None, "retrieved chunks in document order in the state"
                                        + FROM_MODEL.format(True))
    search_backend: str = option("auto", "search: auto (fp16 for large docs), fp16 (fp16 scan + exact fp32 "
                                 "re-rank), numpy (fp32), faiss")
    max_index_gb: float = option(8.0, "largest in-RAM search copy (faiss fp32, fp16)")


@dataclasses.dataclass
class RetrieveConfig(SearchConfig):
    """``q-rag retrieve``: multi-step greedy retrieval; writes one JSON line per question (resumable)."""

    output: str = option("retrieved.jsonl", "output JSONL (id, retrieved ids, q-values, metrics); a rerun skips "
                         "the ids already in it")


@dataclasses.dataclass
class EvalConfig(SearchConfig):
    """``q-rag eval``: support-fact recall/EM (and reader EM/F1) by context length, plus a PNG plot."""

    input: str = option("", "comma-separated dataset files, one per context length")
    output_dir: str = option("eval", "output directory (metrics.json, records.jsonl, accuracy_vs_length.png)")
    reader_model: str = option("", "reader LM (HF path or builtin:name); empty = retrieval metrics only")
    reader_task: str = option("auto", "BabiLong prompt/labels: qa1..qa5; auto = from the file name (qaN), else "
                              "qa1")
    max_new_tokens: int = option(32, "reader answer tokens (32)")
    qvalue_threshold: float | None = option(None, "Q-value early stopping threshold (README example 0.5)")
    backend: str = option("hf", "reader " + BACKEND_HELP["backend"])
    tensor_parallel_size: int = option(1, BACKEND_HELP["tensor_parallel_size"])
    gpu_memory_utilization: float = option(0.9, BACKEND_HELP["gpu_memory_utilization"])
    seed: int = option(0, "random seed")

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.reader_task in READER_TASKS, "reader_task", f"must be one of {READER_TASKS}")
        _check(self.backend in GEN_BACKENDS, "backend", f"must be one of {GEN_BACKENDS}, got {self.backend!r}")
        _check(self.tensor_parallel_size >= 1, "tensor_parallel_size", "must be >= 1")
        _check(0 < self.gpu_memory_utilization <= 1, "gpu_memory_utilization", "must be in (0, 1]")
