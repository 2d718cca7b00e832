"""Typed configs for every ``loongrl`` command; defaults are the paper's / official code's (spec section named).

Each field's help names its source: "code" = rStar-RL/LoongRL or Wangmerlyn/KeyChain, "paper" = the paper notes.
"""

from __future__ import annotations

import dataclasses

from rlcore.backends import BACKEND_HELP as _ROLLOUT_HELP  # torch-free: `loongrl --help` stays light
from rlcore.cli import option

ID_FORMATS = ("full36", "hex32", "hex8")
EVAL_MODES = ("single", "memory-agent")
CEM_MATCHES = ("pred_in_gold", "gold_in_pred")
ANSWER_OCCURRENCES = ("first", "last")
BACKEND_HELP = _ROLLOUT_HELP["backend"]
TP_HELP = _ROLLOUT_HELP["tensor_parallel_size"]
GPU_MEM_HELP = _ROLLOUT_HELP["gpu_memory_utilization"]
MEMORY_HELP = "memory-agent: memory bound in tokens = budget of each memory rewrite (MemAgent: 1024; capped at window/4)"
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


def _check_backend(obj: object) -> None:
    _choice(obj, "backend", ("hf", "vllm"))
    if obj.tensor_parallel_size < 1:
        raise ValueError(f"tensor_parallel_size must be >= 1, got {obj.tensor_parallel_size}")
    if not 0 < obj.gpu_memory_utilization <= 1:
        raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {obj.gpu_memory_utilization}")


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
class SynthMixConfig:
    """``loongrl synth-mix``: the plain multi-hop, needle and math files of the RL data mix (spec "Data mix")."""

    input: str = option("", "seed QA file (or builtin:multihop_qa) for the multi-hop rows and the needle haystack")
    format: str = option("auto", f"input format, one of {list(QA_FORMATS)}")
    math_input: str = option("builtin:arithmetic", "math problems: JSON/JSONL file with problem|question and answer "
                             "(or a \\boxed{} solution), builtin:arithmetic, or an HF dataset name (DAPO-Math, MATH)")
    output_dir: str = option("data", "folder for multihop_<L>k.jsonl, needle_<L>k.jsonl and math.jsonl")
    tokenizer: str = option("", "tokenizer path or builtin:<name> used to measure lengths (code: Qwen2.5-7B-Instruct)")
    max_seq_length: int = option(16384, "target length L in tokens (paper: 16K)")
    reserve_tokens: int = option(128, "tokens kept free while filling multi-hop contexts (code: 128)")
    doc_step: int = option(10, "documents added/removed per filling step (code: 10)")
    num_multihop: int = option(7500, "plain multi-hop rows (paper mix: 7,500; capped at the seed items)")
    num_needle: int = option(1024, "needle-retrieval rows (paper mix: 1,024)")
    num_math: int = option(5000, "math rows (paper mix: 5,000 DAPO + MATH; capped at the input rows)")
    needle_digits: int = option(7, "digits of the needle's magic number")
    seed: int = option(42, "random seed (code: 42)")

    def __post_init__(self) -> None:
        _choice(self, "format", QA_FORMATS)
        _positive(self, "max_seq_length", "doc_step", "needle_digits")
        for n in ("num_multihop", "num_needle", "num_math", "reserve_tokens"):
            if getattr(self, n) < 0:
                raise ValueError(f"{n} must be >= 0, got {getattr(self, n)}")


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
    cem_match: str = option("pred_in_gold", f"CEM direction, one of {list(CEM_MATCHES)} (code: pred_in_gold)")
    answer_occurrence: str = option("first", f"which 'the answer is' is read, one of {list(ANSWER_OCCURRENCES)} "
                                    "(code: first)")
    batch_size: int = option(4, "questions per generation batch")
    limit: int = option(-1, "only filter the first N items (-1: all)")
    seed: int = option(42, "random seed")
    device: str = option("auto", "torch device: auto, cpu, cuda, cuda:N")
    backend: str = option("hf", BACKEND_HELP)
    tensor_parallel_size: int = option(1, TP_HELP)
    gpu_memory_utilization: float = option(0.9, GPU_MEM_HELP)

    def __post_init__(self) -> None:
        _choice(self, "format", QA_FORMATS)
        _choice(self, "cem_match", CEM_MATCHES)
        _choice(self, "answer_occurrence", ANSWER_OCCURRENCES)
        _check_backend(self)
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
    input: str = option("", "KeyChain JSONL from `loongrl synth` (stage I and II)")
    multihop_input: str = option("", "plain multi-hop JSONL with context/input/answers (all stages; `loongrl synth-mix`)")
    extra_input: list[str] = option(help="extra JSONL files of prompt/answers/data_source rows (needle, math; "
                                    "`loongrl synth-mix`)", default_factory=list)
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
    save_steps: int = option(0, "save a TRL checkpoint-N every N optimizer steps of a stage (0: only each stage's final model)")
    resume: str = option("", "'latest' or a checkpoint-N directory: skip finished stages and resume the stage in progress")
    backend: str = option("hf", "rollouts: 'hf' (TRL's own generate) or 'vllm' (TRL use_vllm; needs rlcore[vllm])")
    vllm_mode: str = option("colocate", "TRL vllm_mode with backend vllm: 'colocate' or 'server' (start `trl vllm-serve`)")
    tensor_parallel_size: int = option(1, TP_HELP)
    gpu_memory_utilization: float = option(0.9, GPU_MEM_HELP)
    gradient_checkpointing: bool = option(True, "activation checkpointing (needed for 16K prompts on GPU)")
    device: str = option("auto", "training device: auto (accelerate decides), cpu, cuda")
    bf16: bool = option(False, "bf16 mixed precision (on for GPU runs)")

    def __post_init__(self) -> None:
        _choice(self, "prompt_variant", PROMPT_VARIANTS)
        _check_backend(self)
        _choice(self, "vllm_mode", ("colocate", "server"))
        _choice(self, "device", ("auto", "cpu", "cuda"))
        if self.save_steps < 0:
            raise ValueError(f"save_steps must be >= 0, got {self.save_steps}")
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


def _check_agent(obj: object) -> None:
    _choice(obj, "mode", EVAL_MODES)
    _positive(obj, "memory_tokens", "memory_passes")
    if obj.window < 0:
        raise ValueError(f"window must be >= 0 (0: the model's), got {obj.window}")
    from .generation import parse_rope_scaling

    parse_rope_scaling(obj.rope_scaling, None)


@dataclasses.dataclass
class EvalConfig:
    """``loongrl eval``: sub-EM and F1 on LongBench-style QA, or KeyChain held-out accuracy; single pass or memory agent."""

    model: str = option("", "model path or builtin:<name>")
    input: str = option("", "JSONL with input/context/answers (LongBench), KeyChain records from `loongrl synth`, or a "
                        "seed QA file / builtin:multihop_qa (task longbench: its documents form the context)")
    task: str = option("longbench", "'longbench' (plain prompt) or 'keychain' (KeyChain prompt)")
    mode: str = option("single", f"one of {list(EVAL_MODES)}: one pass (middle-truncated to the window) or a "
                       "memory agent reading segments (MemAgent)")
    output: str = option("", "JSONL of per-item predictions, streamed and resumable (a rerun skips done ids); metrics "
                         "go to <output>.metrics.json ('' = print only)")
    format: str = option("auto", f"seed QA file format when --input is one, one of {list(QA_FORMATS)}")
    prompt_variant: str = option("plain", f"KeyChain prompt variant, one of {list(PROMPT_VARIANTS)}")
    system_prompt: str = option(DEFAULT_SYSTEM_PROMPT, "system message (folded into the user turn when the chat "
                                "template has no system turn)")
    temperature: float = option(0.6, "sampling temperature (paper eval: 0.6)")
    top_p: float = option(0.95, "nucleus top-p (paper eval: 0.95)")
    max_new_tokens: int = option(4096, "max response tokens (capped at half the model's window)")
    window: int = option(0, "context window in tokens (0: the model's max_position_embeddings)")
    memory_tokens: int = option(1024, MEMORY_HELP)
    memory_passes: int = option(1, "memory-agent: reads of the document (MemAgent: 1; KeyChain chains are shuffled, "
                                "more passes follow links that come out of order)")
    rope_scaling: str = option("", "RoPE scaling '<yarn|linear|dynamic>:<factor>' put into the model config (Qwen2.5 "
                               "128K: yarn:4)")
    batch_size: int = option(4, "prompts per generation batch")
    limit: int = option(-1, "evaluate the first N items (-1: all)")
    seed: int = option(0, "random seed")
    device: str = option("auto", "torch device: auto, cpu, cuda, cuda:N")
    backend: str = option("hf", BACKEND_HELP)
    tensor_parallel_size: int = option(1, TP_HELP)
    gpu_memory_utilization: float = option(0.9, GPU_MEM_HELP)

    def __post_init__(self) -> None:
        _choice(self, "task", ("longbench", "keychain"))
        _choice(self, "prompt_variant", PROMPT_VARIANTS)
        _choice(self, "format", QA_FORMATS)
        _check_backend(self)
        _check_agent(self)
        _positive(self, "max_new_tokens", "batch_size")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclasses.dataclass
class NiahConfig:
    """``loongrl niah``: needle-in-a-haystack exact-match accuracy over a (length x depth) grid, saved as a heatmap."""

    model: str = option("", "model path or builtin:<name>")
    input: str = option("builtin:multihop_qa", "seed QA file (or builtin:<name>) whose documents form the haystack")
    format: str = option("auto", f"haystack file format, one of {list(QA_FORMATS)}")
    output: str = option("niah.png", "heatmap PNG path (a JSON of the grid is written beside it)")
    lengths: list[int] = option(help="context lengths in tokens, exact (several values after one flag, or repeat it)",
                                default_factory=lambda: [1024, 2048, 4096])
    depths: list[float] = option(help="needle depths in [0, 1]", default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    trials: int = option(2, "needles per grid cell")
    needle_digits: int = option(7, "digits of the magic number (RULER: 7)")
    mode: str = option("single", f"one of {list(EVAL_MODES)}")
    system_prompt: str = option(DEFAULT_SYSTEM_PROMPT, "system message (folded into the user turn when the chat "
                                "template has no system turn)")
    temperature: float = option(0.6, "sampling temperature (paper eval: 0.6)")
    top_p: float = option(0.95, "nucleus top-p (paper eval: 0.95)")
    max_new_tokens: int = option(1024, "max response tokens (capped at half the model's window)")
    window: int = option(0, "context window in tokens (0: the model's max_position_embeddings)")
    memory_tokens: int = option(1024, MEMORY_HELP)
    memory_passes: int = option(1, "memory-agent: reads of the document (MemAgent: 1)")
    rope_scaling: str = option("", "RoPE scaling '<yarn|linear|dynamic>:<factor>' put into the model config (Qwen2.5 "
                               "128K: yarn:4)")
    batch_size: int = option(4, "prompts per generation batch")
    seed: int = option(0, "random seed")
    device: str = option("auto", "torch device: auto, cpu, cuda, cuda:N")
    backend: str = option("hf", BACKEND_HELP)
    tensor_parallel_size: int = option(1, TP_HELP)
    gpu_memory_utilization: float = option(0.9, GPU_MEM_HELP)

    def __post_init__(self) -> None:
        _choice(self, "format", QA_FORMATS)
        _check_backend(self)
        _check_agent(self)
        _positive(self, "trials", "max_new_tokens", "batch_size", "needle_digits")
        if not self.lengths or any(x <= 0 for x in self.lengths):
            raise ValueError(f"lengths must be a non-empty list of positive ints, got {self.lengths}")
        if not self.depths or any(not 0 <= d <= 1 for d in self.depths):
            raise ValueError(f"depths must be a non-empty list of values in [0, 1], got {self.depths}")
