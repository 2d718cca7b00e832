"""Typed configs of the four commands; defaults are the released code's settings (spec "Engineering")."""

from __future__ import annotations

from dataclasses import dataclass

from rlcore.backends import BACKEND_HELP  # torch-free: `p-genrm --help` stays light
from rlcore.cli import check_model_ref, option

__all__ = ["GenerationConfig", "ScoreConfig", "PrototypeConfig", "EvalConfig", "TrainConfig", "STAGES", "INPUT_FORMATS"]

STAGES = ("sft", "grpo", "curriculum")
INPUT_FORMATS = ("auto", "personalrewardbench", "personalized-rewardbench")


@dataclass
class GenerationConfig:
    """Model and sampling settings shared by every command that generates evaluation chains."""

    model: str = option("builtin:tiny-reasoner", "P-GenRM model: builtin:<name>, local path or HF hub name")
    max_new_tokens: int = option(3072, "evaluation-chain token budget (released HF pipeline: 3072)")
    temperature: float = option(1.0, "sampling temperature (released scaling script: 1.0)")
    top_p: float = option(1.0, "nucleus sampling threshold")
    max_retries: int = option(2, "re-sampling rounds for chains that fail to parse (never guessed)")
    gen_batch_size: int = option(0, "sequences decoded together by the HF generator (0 = all at once)")
    seed: int = option(42, "seed of shuffles, history samples and sampling (released: 42)")
    device: str = option("auto", "torch device: auto (cuda when available), cpu, cuda, cuda:N")
    dtype: str = option("auto", "model dtype: auto, bf16, fp16 or fp32")
    strict_arithmetic: bool = option(False, "ask for and parse our structured 'criteria' JSON and reject chains "
                                     "whose weighted sums are off (default: released free-text format, lenient)")
    backend: str = option("hf", BACKEND_HELP["backend"])
    tensor_parallel_size: int = option(1, BACKEND_HELP["tensor_parallel_size"])
    gpu_memory_utilization: float = option(0.9, BACKEND_HELP["gpu_memory_utilization"])

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("model: must name a model")
        check_model_ref(self.model)  # a mistyped local path is one line, before any heavy import
        if self.backend not in ("hf", "vllm"):
            raise ValueError(f"backend: must be 'hf' or 'vllm', got {self.backend!r}")
        if self.tensor_parallel_size < 1:
            raise ValueError(f"tensor_parallel_size: must be >= 1, got {self.tensor_parallel_size}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(f"gpu_memory_utilization: must be in (0, 1], got {self.gpu_memory_utilization}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens: must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature: must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p: must be in (0, 1], got {self.top_p}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries: must be >= 0, got {self.max_retries}")
        if self.gen_batch_size < 0:
            raise ValueError(f"gen_batch_size: must be >= 0, got {self.gen_batch_size}")


@dataclass
class _ScalingFields:
    prototypes: str = option("", "prototype directory from build-prototypes ('' = individual scaling only)")
    encoder: str = option("", "sentence-transformers model for PART-1 embeddings ('' = offline all-MiniLM-L6-v2)")
    coef_self: float = option(0.5, "fusion weight c_s of the individual side (released: 0.5)")
    coef_neighbors: float = option(0.5, "fusion weight c_n of the prototype side (released: 0.5)")
    tie_rule: str = option("first", "equal final scores: 'first' prefers response 1 (released), 'none' abstains")

    def _check_scaling(self) -> None:
        if self.coef_self < 0 or self.coef_neighbors < 0 or self.coef_self + self.coef_neighbors <= 0:
            raise ValueError("coef_self/coef_neighbors: must be >= 0 with a positive sum")
        if self.tie_rule not in ("first", "none"):
            raise ValueError(f"tie_rule: must be 'first' or 'none', got {self.tie_rule!r}")


@dataclass
class ScoreConfig(GenerationConfig, _ScalingFields):
    """``p-genrm score``: score request JSONL records (query, response_1, response_2, history, stated_criteria)."""

    input: str = option("", "JSONL of requests: query, response_1, response_2, [history], [stated_criteria], [user_id]")
    output: str = option("scores.jsonl", "where to write one scored record per request")
    preset: str = option("ind1", "scaling budget indN[+proK | +cproK]: e.g. ind1, ind16, ind8+pro4, ind16+pro8 (paper), "
                         "ind2+cpro2 (cached prototype criteria, 4 chains)")

    def __post_init__(self) -> None:
        GenerationConfig.__post_init__(self)
        self._check_scaling()
        if not self.input:
            raise ValueError("input: a JSONL file of requests is required")
        from .scaling import get_preset

        if get_preset(self.preset)[1] > 0 and not self.prototypes:
            raise ValueError(f"preset: {self.preset!r} uses Pro-k and needs --prototypes")


@dataclass
class PrototypeConfig(GenerationConfig):
    """``p-genrm build-prototypes``: chains of training users -> K-means prototypes -> refinement -> index."""

    input: str = option("", "PersonalRewardBench JSONL (user_id, split, context, chosen, rejected); train+val rows used")
    stated_prefs: str = option("", "optional PRISM survey JSONL (user_id, stated_prefs)")
    output_dir: str = option("prototypes", "directory for A_init/A/E/assign .npy, members.jsonl, meta.json")
    encoder: str = option("", "sentence-transformers model ('' = offline all-MiniLM-L6-v2; paper: Qwen3-Embedding-0.6B)")
    num_prototypes: int = option(100, "K of K-means (released scaling script: 100)")
    history_size: int = option(3, "leave-one-out history pairs per member chain (released scaling: 3)")
    kmeans_iters: int = option(25, "K-means iterations")
    kmeans_init: int = option(10, "K-means restarts (sklearn n_init=10 in the release)")
    refine: bool = option(True, "run the history-aware attentive refinement (released --use-trained)")
    refine_epochs: int = option(1, "refinement epochs (release: 1)")
    refine_batch_size: int = option(16, "refinement batch size (release: 16)")
    refine_lr: float = option(1e-3, "AdamW learning rate of the refinement (release: 1e-3)")
    rho: float = option(0.5, "query weight rho in the attention logits (release: 0.5)")
    lambda_q: float = option(1.0, "lambda_q, weight of W_q q in z (release: 1)")
    lambda_s: float = option(1.0, "lambda_s, weight of W_s s_q in z (release: 1)")

    def __post_init__(self) -> None:
        GenerationConfig.__post_init__(self)
        if not self.input:
            raise ValueError("input: a PersonalRewardBench JSONL file is required")
        for name in ("num_prototypes", "history_size", "kmeans_iters", "kmeans_init", "refine_epochs",
                     "refine_batch_size"):
            if getattr(self, name) < (0 if name == "history_size" else 1):
                raise ValueError(f"{name}: must be positive, got {getattr(self, name)}")
        if self.refine_lr <= 0:
            raise ValueError(f"refine_lr: must be > 0, got {self.refine_lr}")


@dataclass
class EvalConfig(GenerationConfig, _ScalingFields):
    """``p-genrm eval``: per-user pairwise accuracy on test rows, per scaling preset, mean and std over seeds."""

    input: str = option("", "benchmark JSONL: PersonalRewardBench rows (test rows scored, train rows give histories) "
                        "or Personalized RewardBench rows (see --input-format)")
    input_format: str = option("auto", "auto, personalrewardbench (SynthesizeMe rows) or personalized-rewardbench "
                               "(arXiv 2604.07343: question, profile, chosen, rejected)")
    profile_size: int = option(8, "Personalized RewardBench: profile entries shown per query (most word overlap)")
    profile_chars: int = option(600, "Personalized RewardBench: characters kept of each profile entry")
    stated_prefs: str = option("", "optional PRISM survey JSONL (user_id, stated_prefs)")
    presets: list[str] = option(None, "scaling budgets to evaluate (see score --preset)", default_factory=lambda: ["ind1"])
    seeds: list[int] = option(None, "evaluation seeds (paper: mean +- std over 3 runs)", default_factory=lambda: [42])
    history_size: int = option(6, "history pairs per test query (standard evaluation: 6)")
    output: str = option("", "write the metrics JSON here ('' = stdout only)")

    def __post_init__(self) -> None:
        GenerationConfig.__post_init__(self)
        self._check_scaling()
        from .scaling import get_preset

        if not self.input:
            raise ValueError("input: a benchmark JSONL file is required")
        if self.input_format not in INPUT_FORMATS:
            raise ValueError(f"input_format: must be one of {INPUT_FORMATS}, got {self.input_format!r}")
        if self.profile_size < 0 or self.profile_chars < 1:
            raise ValueError("profile_size/profile_chars: must be >= 0 / >= 1")
        if not self.presets or not self.seeds:
            raise ValueError("presets/seeds: need at least one each")
        for p in self.presets:
            if get_preset(p)[1] > 0 and not self.prototypes:
                raise ValueError(f"presets: {p!r} uses Pro-k and needs --prototypes")
        if self.history_size < 0:
            raise ValueError(f"history_size: must be >= 0, got {self.history_size}")


@dataclass
class TrainConfig:
    """``p-genrm train --stage``: PSI (SFT), CRE (GRPO, alpha*process + beta*outcome), hard-negative curriculum."""

    stage: str = option("sft", "sft (PSI), grpo (CRE) or curriculum (hard-negative GRPO)")
    model: str = option("builtin:tiny-reasoner", "base model (paper: Llama-3.1-8B-Instruct)")
    input: str = option("", "sft: teacher-chain JSONL; grpo/curriculum: PersonalRewardBench JSONL")
    stated_prefs: str = option("", "optional PRISM survey JSONL (user_id, stated_prefs) for the process reward")
    output_dir: str = option("runs/p_genrm", "checkpoint / log directory")
    history_size: int = option(6, "history pairs in each training prompt (standard evaluation: 6)")
    learning_rate: float = option(1e-6, "learning rate (not disclosed; TRL-typical)")
    max_steps: int = option(100, "optimizer steps")
    per_device_train_batch_size: int = option(8, "prompts x generations per device step")
    gradient_accumulation_steps: int = option(1, "gradient accumulation")
    num_generations: int = option(8, "GRPO group size (not disclosed)")
    max_completion_length: int = option(3072, "chain length budget during RL")
    max_length: int = option(8192, "SFT sequence length (prompt + chain)")
    alpha: float = option(0.5, "weight of the process reward (paper: alpha, value not disclosed)")
    beta: float = option(1.0, "weight of the outcome reward (paper: beta, value not disclosed)")
    hard_fraction: float = option(0.3, "share of pairs labelled hard negatives (curriculum)")
    hn_start: float = option(0.1, "hard-negative proportion of the first batches (curriculum; not disclosed)")
    hn_end: float = option(0.9, "hard-negative proportion of the last batches (curriculum; not disclosed)")
    seed: int = option(42, "seed")
    strict_arithmetic: bool = option(False, "prompts ask for, and the outcome reward / PSI filter parse, our structured "
                                     "'criteria' format (default: released free-text format)")
    device: str = option("auto", "training device: auto (cuda when available), cpu or cuda (multi-GPU: accelerate)")
    save_steps: int = option(0, "save a checkpoint-N every N optimizer steps (0 = only the final model)")
    backend: str = option("hf", BACKEND_HELP["backend"] + " (grpo/curriculum: TRL's vLLM colocate mode)")
    tensor_parallel_size: int = option(1, BACKEND_HELP["tensor_parallel_size"])
    gpu_memory_utilization: float = option(0.9, BACKEND_HELP["gpu_memory_utilization"])
    resume: str | None = option(None, "resume from 'latest' (newest checkpoint-N in --output-dir) or a checkpoint path")

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage: must be one of {STAGES}, got {self.stage!r}")
        check_model_ref(self.model)
        if not self.input:
            raise ValueError("input: a training JSONL file is required")
        if self.save_steps < 0:
            raise ValueError(f"save_steps: must be >= 0, got {self.save_steps}")
        if self.backend not in ("hf", "vllm"):
            raise ValueError(f"backend: must be 'hf' or 'vllm', got {self.backend!r}")
        if self.alpha < 0 or self.beta < 0 or self.alpha + self.beta == 0:
            raise ValueError("alpha/beta: must be >= 0 with a positive sum")
        for name in ("hard_fraction", "hn_start", "hn_end"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}: must be in [0, 1], got {getattr(self, name)}")
        for name in ("max_steps", "per_device_train_batch_size", "gradient_accumulation_steps", "num_generations",
                     "max_completion_length", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.stage != "sft" and (self.per_device_train_batch_size * self.gradient_accumulation_steps
                                    ) % self.num_generations:
            raise ValueError("per_device_train_batch_size * gradient_accumulation_steps must be divisible by "
                             f"num_generations ({self.num_generations})")
