"""Typed configs for every ``loongrl`` command; defaults are the paper's / official code's (spec section named).

Each field's help names its source: "code" = rStar-RL/LoongRL or Wangmerlyn/KeyChain, "paper" = the paper notes.
"""

from __future__ import annotations

import dataclasses

from rlcore.cli import option

ID_FORMATS = ("full36", "hex32", "hex8")
QA_FORMATS = ("auto", "hotpotqa", "musique", "2wikimqa", "jsonl")
PROMPT_VARIANTS = ("plain", "1line")
DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant. Think step by step inside <think> </think>, "
    "then give the final answer inside \\boxed{} after </think>."
)


def _positive(obj: object, *names: str) -> None:
    for n in names:
        if getattr(obj, n) <= 0:
            raise ValueError(f"{n} must be > 0, got {getattr(obj, n)!r}")


def _choice(obj: object, name: str, choices: tuple[str, ...]) -> None:
    if getattr(obj, name) not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {getattr(obj, name)!r}")


@dataclasses.dataclass
class SynthConfig:
    """``loongrl synth``: seed QA file -> filled long contexts with KeyChain chains inserted (spec steps 2-3)."""

    input: str = option("", "seed QA file (HotpotQA json, MuSiQue jsonl, 2WikiMQA json or generic JSONL)")
    format: str = option("auto", f"input format, one of {list(QA_FORMATS)}")
    output: str = option("", "output JSONL of KeyChain records")
    tokenizer: str = option("", "tokenizer path or builtin:<name> used to measure lengths (code: Qwen2.5-7B-Instruct)")
    max_seq_length: int = option(16384, "target context length L in tokens (paper: RL uses 16K)")
    reserve_tokens: int = option(128, "tokens kept free for generation while filling (code: tokens_to_generate=128)")
    doc_step: int = option(10, "documents added/removed per filling step (code: incremental=10)")
    core_sigma: float = option(0.30, "std of the Gaussian placing the item's own documents (code: core_gaussian 0.30)")
    passage_template: str = option("Passage {i}:\n{document}", "per-document rendering, i is 1-based (code)")
    num_uuids: int = option(4, "ids per chain (code: num_uuids=4)")
    chains_per_1k: int = option(4, "chains per 1024 tokens of L: num_chains = chains_per_1k*L//1024 (code: 4)")
    distractors_per_1k: int = option(16, "distractor questions sampled per 1024 tokens of L (code: 16)")
    id_format: str = option("hex8", f"chain id format, one of {list(ID_FORMATS)} (code: default_8 = hex8)")
    num_samples: int = option(-1, "items to synthesise (-1: all)")
    seed: int = option(42, "random seed (code: 42)")

    def __post_init__(self) -> None:
        _choice(self, "format", QA_FORMATS)
        _choice(self, "id_format", ID_FORMATS)
        _positive(self, "max_seq_length", "doc_step", "core_sigma", "num_uuids", "chains_per_1k")
        if self.reserve_tokens < 0:
            raise ValueError(f"reserve_tokens must be >= 0, got {self.reserve_tokens}")
        if self.distractors_per_1k < self.chains_per_1k:
            raise ValueError("distractors_per_1k must be >= chains_per_1k (one distractor question per chain)")
        if "{document}" not in self.passage_template:
            raise ValueError("passage_template must contain '{document}'")
        if self.num_samples == 0 or self.num_samples < -1:
            raise ValueError(f"num_samples must be -1 (all) or > 0, got {self.num_samples}")


@dataclasses.dataclass
class FilterConfig:
    """``loongrl filter``: keep items a model solves sometimes but not always over the short context (spec step 1)."""

    input: str = option("", "seed QA file")
    format: str = option("auto", f"input format, one of {list(QA_FORMATS)}")
    output: str = option("", "output JSONL of kept items (generic loongrl JSONL format)")
    model: str = option("", "model path or builtin:<name> (code: Qwen2.5-32B-Instruct)")
    num_samples: int = option(8, "samples k per question (code: 8); keep items with 0 < passes < k")
    temperature: float = option(1.0, "sampling temperature (code: 1.0)")
    max_new_tokens: int = option(2048, "max tokens per sample (code: 2048)")
    batch_size: int = option(4, "questions per generation batch")
    limit: int = option(-1, "only filter the first N items (-1: all)")
    seed: int = option(42, "random seed")
    device: str = option("auto", "torch device")

    def __post_init__(self) -> None:
        _choice(self, "format", QA_FORMATS)
        _positive(self, "num_samples", "max_new_tokens", "batch_size")
        if self.num_samples < 2:
            raise ValueError("num_samples must be >= 2: the filter keeps 0 < passes < num_samples")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")


@dataclasses.dataclass
class TrainConfig:
    """``loongrl train``: GRPO with the three-stage curriculum (spec "RL algorithm")."""

    model: str = option("", "policy model path or builtin:<name> (paper: Qwen2.5-7B/14B-Instruct)")
    output_dir: str = option("runs/loongrl", "where checkpoints and the training log go")
    keychain_data: str = option("", "KeyChain JSONL from `loongrl synth` (stage I and II)")
    multihop_data: str = option("", "plain multi-hop JSONL with context/input/answers (all stages)")
    extra_data: list[str] = option(help="extra JSONL files of prompt/answers rows (needle, math)", default_factory=list)
    prompt_variant: str = option("plain", f"KeyChain prompt variant, one of {list(PROMPT_VARIANTS)}")
    system_prompt: str = option(DEFAULT_SYSTEM_PROMPT, "system message asking for <think> and \\boxed{} (not in code)")
    warmup_steps: int = option(42, "warm-up steps on data without KeyChain (paper: ~42, 7B only; 0 skips)")
    stage1_steps: int = option(168, "stage I steps with KeyChain data added (paper: 168)")
    stage2_steps: int = option(135, "stage II steps on mined hard items (paper: ~120-150)")
    mining_samples: int = option(8, "rollouts per item for stage II hard mining (paper: 8)")
    mining_pool: int = option(-1, "items scored for hard mining (-1: the whole stage I mix)")
    num_generations: int = option(8, "GRPO group size G (paper: 8)")
    learning_rate: float = option(1e-6, "learning rate, cosine decay (paper: 1e-6)")
    lr_scheduler_type: str = option("cosine", "learning-rate schedule (paper: cosine)")
    beta: float = option(0.001, "k3 (low_var_kl) KL loss coefficient (code: kl_loss_coef 0.001)")
    epsilon: float = option(0.2, "PPO clip range (verl default 0.2)")
    max_grad_norm: float = option(1.0, "gradient clip (verl default 1.0)")
    max_completion_length: int = option(2048, "max response tokens (checkpoint name: 2K; notes say 4K)")
    temperature: float = option(1.0, "rollout temperature")
    per_device_train_batch_size: int = option(8, "completions per device per step (multiple of G)")
    gradient_accumulation_steps: int = option(32, "accumulation; 8*32 = 256 completions = 32 prompts x G")
    credit_empty_prediction: bool = option(False, "score a prediction that normalises to '' as 1 (official quirk)")
    seed: int = option(42, "random seed")
    logging_steps: int = option(1, "log every N steps")
    save_strategy: str = option("no", "HF save strategy per stage ('no', 'steps', 'epoch'); final model is always saved")
    gradient_checkpointing: bool = option(True, "activation checkpointing (needed for 16K prompts on GPU)")
    use_cpu: bool = option(False, "force CPU training")
    bf16: bool = option(False, "bf16 mixed precision (on for GPU runs)")

    def __post_init__(self) -> None:
        _choice(self, "prompt_variant", PROMPT_VARIANTS)
        _positive(self, "num_generations", "learning_rate", "max_completion_length", "mining_samples",
                  "per_device_train_batch_size", "gradient_accumulation_steps", "temperature", "epsilon")
        for n in ("warmup_steps", "stage1_steps", "stage2_steps", "beta"):
            if getattr(self, n) < 0:
                raise ValueError(f"{n} must be >= 0, got {getattr(self, n)}")
        if self.warmup_steps + self.stage1_steps + self.stage2_steps == 0:
            raise ValueError("warmup_steps + stage1_steps + stage2_steps must be > 0")
        if (self.per_device_train_batch_size * self.gradient_accumulation_steps) % self.num_generations:
            raise ValueError("per_device_train_batch_size * gradient_accumulation_steps must be a multiple of "
                             f"num_generations={self.num_generations}")


@dataclasses.dataclass
class EvalConfig:
    """``loongrl eval``: sub-EM and F1 on LongBench-style QA JSONL, or KeyChain held-out accuracy."""

    model: str = option("", "model path or builtin:<name>")
    data: str = option("", "JSONL with input/context/answers (LongBench) or KeyChain records from `loongrl synth`")
    task: str = option("longbench", "'longbench' (plain prompt) or 'keychain' (KeyChain prompt)")
    output: str = option("", "JSON file for metrics and per-item predictions ('' = print only)")
    prompt_variant: str = option("plain", f"KeyChain prompt variant, one of {list(PROMPT_VARIANTS)}")
    system_prompt: str = option(DEFAULT_SYSTEM_PROMPT, "system message")
    temperature: float = option(0.6, "sampling temperature (paper eval: 0.6)")
    top_p: float = option(0.95, "nucleus top-p (paper eval: 0.95)")
    max_new_tokens: int = option(4096, "max response tokens")
    batch_size: int = option(4, "prompts per generation batch")
    limit: int = option(-1, "evaluate the first N items (-1: all)")
    seed: int = option(0, "random seed")
    device: str = option("auto", "torch device")

    def __post_init__(self) -> None:
        _choice(self, "task", ("longbench", "keychain"))
        _choice(self, "prompt_variant", PROMPT_VARIANTS)
        _positive(self, "max_new_tokens", "batch_size")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclasses.dataclass
class NiahConfig:
    """``loongrl niah``: needle-in-a-haystack accuracy over a (length x depth) grid, saved as a heatmap PNG."""

    model: str = option("", "model path or builtin:<name>")
    haystack: str = option("", "seed QA file whose documents form the haystack")
    format: str = option("auto", f"haystack file format, one of {list(QA_FORMATS)}")
    output: str = option("niah.png", "heatmap PNG path (a JSON of the grid is written beside it)")
    lengths: list[int] = option(help="context lengths in tokens", default_factory=lambda: [4096, 8192, 16384])
    depths: list[float] = option(help="needle depths in [0, 1]", default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    trials: int = option(2, "needles per grid cell")
    system_prompt: str = option(DEFAULT_SYSTEM_PROMPT, "system message")
    temperature: float = option(0.6, "sampling temperature (paper eval: 0.6)")
    top_p: float = option(0.95, "nucleus top-p (paper eval: 0.95)")
    max_new_tokens: int = option(1024, "max response tokens")
    seed: int = option(0, "random seed")
    device: str = option("auto", "torch device")

    def __post_init__(self) -> None:
        _choice(self, "format", QA_FORMATS)
        _positive(self, "trials", "max_new_tokens")
        if not self.lengths or any(x <= 0 for x in self.lengths):
            raise ValueError(f"lengths must be a non-empty list of positive ints, got {self.lengths}")
        if not self.depths or any(not 0 <= d <= 1 for d in self.depths):
            raise ValueError(f"depths must be a non-empty list of values in [0, 1], got {self.depths}")
