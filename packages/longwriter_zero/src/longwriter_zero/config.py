"""Typed configs for every command; defaults are the paper's where it gives them (spec "RL hyperparameters").

Values the paper does not publish (learning rate, KL coefficient, clip epsilon, L_max, Format-RM metric) are
marked "assumption" in their help.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlcore.backends import BackendFields
from rlcore.cli import option

__all__ = ["RewardConfig", "TrainConfig", "GenerateConfig", "PredictLengthConfig", "EvalConfig", "TrainRMConfig"]


def _positive(obj, *names: str) -> None:
    for n in names:
        if getattr(obj, n) <= 0:
            raise ValueError(f"{n} must be > 0, got {getattr(obj, n)}")


@dataclass
class RewardConfig:
    """Reward settings shared by ``train`` and ``eval``."""

    rm_model: str = option("", "writing reward model (HF sequence-classification path/name); '' disables the Writing RM")
    rm_max_length: int = option(4096, "RM input budget in tokens (question head + answer by rm_truncation)")
    rm_max_question_tokens: int = option(512, "tokens of the question kept in the RM input")
    rm_truncation: str = option("head_tail", "answer truncation for the RM: head_tail, head or tail")
    rm_batch_size: int = option(8, "RM scoring batch size")
    rm_pad_with_eos: bool = option(False, "pad RM batches with eos when its tokenizer has no pad token (else error)")
    critic_model: str = option("", "a generative critic (any chat model scoring 1-10) as the quality reward instead of "
                               "rm_model (beyond the paper; see critic_reward.py)")
    critic_max_new_tokens: int = option(256, "the critic's generation budget (reasons + 'Score: N')")
    l_max: int = option(12000, "length where the Length RM's upper ramp reaches 0 (assumption: not published)")
    length_column: str = option("length_range", "dataset column with the [lower, upper] word range")
    untagged: str = option("none", "answer of a completion without <answer>/</think>: none (paper) or whole")
    think: bool = option(True, "Think template and format (paper default) or the No-think ablation")
    format_ngram: int = option(4, "n-gram order of the Format RM's repetition check (assumption)")
    format_threshold: float = option(0.5, "share of already-seen n-grams that makes a unit a near-duplicate (assumption)")
    format_penalty: float = option(1.0, "format reward = 1[valid] - penalty * repetition rate (assumption)")
    format_unit_words: int = option(100, "window size in tokens for long paragraphs in the repetition check")
    format_repetition: str = option("both", "repetition check: ngram (lexical 4-grams), minhash (paraphrases: content-word "
                                    "Jaccard via MinHash LSH) or both (the larger rate)")
    format_minhash_threshold: float = option(0.4, "content-word Jaccard that makes a unit a paraphrased repeat (assumption)")

    def __post_init__(self) -> None:
        _positive(self, "rm_max_length", "rm_batch_size", "l_max", "format_ngram", "format_unit_words")
        if self.rm_max_question_tokens < 0:
            raise ValueError(f"rm_max_question_tokens must be >= 0, got {self.rm_max_question_tokens}")
        if self.rm_truncation not in ("head_tail", "head", "tail"):
            raise ValueError(f"rm_truncation must be head_tail, head or tail, got {self.rm_truncation!r}")
        if self.rm_model and self.critic_model:
            raise ValueError("give rm_model or critic_model as the quality reward, not both")
        if self.untagged not in ("none", "whole"):
            raise ValueError(f"untagged must be none or whole, got {self.untagged!r}")
        if not 0 < self.format_threshold <= 1:
            raise ValueError(f"format_threshold must be in (0, 1], got {self.format_threshold}")
        if self.format_repetition not in ("ngram", "minhash", "both"):
            raise ValueError(f"format_repetition must be ngram, minhash or both, got {self.format_repetition!r}")
        if not 0 < self.format_minhash_threshold <= 1:
            raise ValueError(f"format_minhash_threshold must be in (0, 1], got {self.format_minhash_threshold}")
        if self.format_penalty < 0:
            raise ValueError(f"format_penalty must be >= 0, got {self.format_penalty}")


@dataclass
class TrainConfig(RewardConfig, BackendFields):
    """``longwriter-zero train``: GRPO with the three rewards and advantage averaging."""

    model: str = option("", "policy model (path, hub name or builtin:<name>); the paper uses Qwen2.5-32B base after CPT")
    input: str = option("", "prompts JSONL (fields: question, length_range) or an HF dataset name")
    split: str = option("train", "split when input is an HF dataset")
    question_column: str = option("question", "dataset column with the user's request")
    template: str = option("", "custom prompt template with {question} ('' = the paper's Think/No-think EN/ZH)")
    output_dir: str = option("runs/longwriter-zero", "checkpoints and logs")
    num_generations: int = option(32, "group size G ('32 samples per step', spec)")
    per_device_train_batch_size: int = option(32, "completions per device per step (multiple of num_generations)")
    gradient_accumulation_steps: int = option(1, "gradient accumulation steps")
    max_steps: int = option(150, "RL steps (final model: 150)")
    max_completion_length: int = option(14000, "max output tokens (paper: 14K)")
    temperature: float = option(0.8, "rollout temperature (paper)")
    top_p: float = option(1.0, "rollout top-p (paper)")
    learning_rate: float = option(1e-6, "learning rate (assumption: not published)")
    beta: float = option(1e-3, "KL coefficient (assumption: not published)")
    epsilon: float = option(0.2, "PPO clip epsilon (assumption: not published)")
    w_length: float = option(1.0, "weight of the Length RM in the advantage average (paper: equal)")
    w_writing: float = option(1.0, "weight of the Writing RM in the advantage average (paper: equal)")
    w_format: float = option(1.0, "weight of the Format RM in the advantage average (paper: equal)")
    reward_mode: str = option("average", "average: the paper's advantage averaging; gated: RLMR-style, outputs that "
                              "violate the length range or format rank below every compliant one (beyond the paper)")
    gate_margin: float = option(1.0, "gated mode: a violator's advantage = min(0, lowest compliant) - gate_margin")
    gate_format: bool = option(True, "gated mode: format violations gate too (else only the length range)")
    logging_steps: int = option(1, "log every N steps")
    save_steps: int = option(50, "checkpoint every N steps (0: only at the end)")
    resume: str = option("", "'' (fresh), 'latest' (last checkpoint in output_dir; fresh if none) or a checkpoint path")
    vllm_mode: str = option("colocate", "with --backend vllm: colocate (vLLM inside the trainer processes) or server "
                            "(a separate `trl vllm-serve` process; see README)")
    seed: int = option(0, "random seed")
    device: str = option("auto", "auto, cpu or cuda")

    def __post_init__(self) -> None:
        super().__post_init__()
        BackendFields.__post_init__(self)
        if not self.model:
            raise ValueError("model is required (a path, hub name or builtin:<name>)")
        if not self.input:
            raise ValueError("input is required (a prompts JSONL or HF dataset name)")
        if self.vllm_mode not in ("colocate", "server"):
            raise ValueError(f"vllm_mode must be colocate or server, got {self.vllm_mode!r}")
        if self.template and "{question}" not in self.template:
            raise ValueError("template must contain the placeholder {question}")
        _positive(self, "num_generations", "per_device_train_batch_size", "gradient_accumulation_steps",
                  "max_steps", "max_completion_length", "temperature", "learning_rate", "logging_steps")
        if self.num_generations < 2:
            raise ValueError(f"num_generations must be >= 2 (group normalisation), got {self.num_generations}")
        if (self.per_device_train_batch_size * self.gradient_accumulation_steps) % self.num_generations:
            raise ValueError("per_device_train_batch_size * gradient_accumulation_steps must be a multiple of "
                             f"num_generations ({self.num_generations})")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.reward_mode not in ("average", "gated"):
            raise ValueError(f"reward_mode must be average or gated, got {self.reward_mode!r}")
        if self.gate_margin <= 0:
            raise ValueError(f"gate_margin must be > 0, got {self.gate_margin}")
        if min(self.w_length, self.w_writing, self.w_format) < 0:
            raise ValueError("reward weights w_length, w_writing, w_format must be >= 0")
        if self.save_steps < 0:
            raise ValueError(f"save_steps must be >= 0, got {self.save_steps}")


@dataclass
class GenerateConfig(BackendFields):
    """``longwriter-zero generate``: sample answers with the paper's prompt and stop strings (streams one query)."""

    model: str = option("", "policy model (path, hub name or builtin:<name>)")
    question: str = option("", "one request to answer (printed to stdout)")
    input: str = option("", "or a JSONL of requests (field: question); answers go to output")
    output: str = option("", "JSONL of generations (question, completion, answer) when input is given; appended as "
                         "each batch finishes, and a rerun skips the ids already there")
    batch_size: int = option(8, "requests sampled together")
    think: bool = option(True, "Think template (paper) or No-think")
    template: str = option("", "custom prompt template with {question} ('' = the paper's templates)")
    max_new_tokens: int = option(15500, "max new tokens (card: 15,500)")
    temperature: float = option(0.6, "sampling temperature (card: 0.6)")
    top_p: float = option(0.95, "top-p (card: 0.95)")
    seed: int = option(0, "random seed")
    device: str = option("auto", "auto, cpu or cuda")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.model:
            raise ValueError("model is required")
        if bool(self.question) == bool(self.input):
            raise ValueError("give exactly one of question or input")
        if self.input and not self.output:
            raise ValueError("output is required with input")
        _positive(self, "max_new_tokens", "temperature", "batch_size")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclass
class PredictLengthConfig(BackendFields):
    """``longwriter-zero predict-length``: add a ``length_range`` to every record (rules, then the LM assessor)."""

    input: str = option("", "prompts JSONL (field: question)")
    output: str = option("", "JSONL written with length_range and length_source added")
    model: str = option("", "assessor causal LM (paper: QwQ-32B); '' for the rule-based path + fallback only")
    question_column: str = option("question", "field with the request")
    length_column: str = option("length_range", "field to write (records that already have it are kept: cache)")
    length_rules: str = option("on", "on: explicit single word counts by rule (N +/- 10%, the assessor's own rule 5), "
                               "the rest by the assessor; off: the assessor LM for every query (paper)")
    fallback_lower: int = option(0, "fallback range lower bound when nothing parses ([0,0]: no length reward)")
    fallback_upper: int = option(0, "fallback range upper bound")
    max_new_tokens: int = option(64, "assessor generation budget")
    batch_size: int = option(8, "assessor batch size")
    device: str = option("auto", "auto, cpu or cuda")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.input or not self.output:
            raise ValueError("input and output are required")
        _positive(self, "max_new_tokens", "batch_size")
        if self.length_rules not in ("on", "off"):
            raise ValueError(f"length_rules must be on or off, got {self.length_rules!r}")
        if not 0 <= self.fallback_lower <= self.fallback_upper <= 12000:
            raise ValueError("need 0 <= fallback_lower <= fallback_upper <= 12000")


@dataclass
class EvalConfig(RewardConfig, BackendFields):
    """``longwriter-zero eval``: length adherence, format validity, repetition, and Arena-Write-style Elo."""

    input: str = option("", "JSONL of generations (fields: question, completion; length_range for adherence)")
    output: str = option("", "JSON report path ('' prints only)")
    baselines: str = option("", "JSONL of baseline responses (question + baseline_response: {model: text}) for Elo")
    judge: str = option("", "judge: an HF causal LM path/name, or an OpenAI-compatible base URL (http...)")
    judge_model: str = option("", "model name sent to the OpenAI-compatible endpoint")
    judge_api_key_env: str = option("OPENAI_API_KEY", "environment variable holding the endpoint's API key")
    judge_max_new_tokens: int = option(512, "judge generation budget")
    judge_max_retries: int = option(6, "endpoint judge: retries with exponential backoff before a call fails")
    judgements: str = option("", "JSONL cache of verdicts, appended as each is made; a rerun judges only the missing "
                             "pairs ('' = <output>.judgements.jsonl when output is set)")
    policy_name: str = option("policy", "name of the evaluated model in the Elo table")
    bootstrap: int = option(200, "bootstrap rounds for Elo intervals")
    seed: int = option(0, "random seed (bootstrap)")
    device: str = option("auto", "auto, cpu or cuda")

    def __post_init__(self) -> None:
        super().__post_init__()
        BackendFields.__post_init__(self)
        if not self.input:
            raise ValueError("input is required")
        if self.baselines and not self.judge:
            raise ValueError("baselines need a judge (HF model or endpoint URL)")
        _positive(self, "judge_max_new_tokens", "bootstrap")


@dataclass
class TrainRMConfig:
    """``longwriter-zero train-rm``: a Bradley-Terry writing RM from preference pairs (TRL RewardTrainer)."""

    model: str = option("", "base model for the RM (any HF model loadable for sequence classification)")
    input: str = option("", "JSONL of pairs: prompt (optional), chosen, rejected")
    output_dir: str = option("runs/writing-rm", "where the trained RM is saved")
    max_length: int = option(4096, "RM input budget in tokens, as rm_max_length at scoring (longer pairs are truncated the same way)")
    max_question_tokens: int = option(512, "tokens of the prompt kept (as rm_max_question_tokens at scoring)")
    truncation: str = option("head_tail", "answer truncation, as rm_truncation at scoring: head_tail, head or tail")
    learning_rate: float = option(1e-5, "learning rate (assumption: not published)")
    num_train_epochs: float = option(1.0, "epochs")
    max_steps: int = option(-1, "stop after N steps (-1: epochs decide)")
    per_device_train_batch_size: int = option(8, "pairs per device per step")
    gradient_accumulation_steps: int = option(1, "gradient accumulation")
    center_rewards_coefficient: float = option(0.0, "TRL's reward-centering auxiliary loss (0: plain BT loss)")
    pad_with_eos: bool = option(False, "use eos as pad when the tokenizer has none (else error)")
    save_steps: int = option(0, "checkpoint every N steps (0: no intermediate checkpoints)")
    resume: str = option("", "'' (fresh), 'latest' (last checkpoint in output_dir; fresh if none) or a checkpoint path")
    seed: int = option(0, "random seed")
    device: str = option("auto", "auto, cpu or cuda")

    def __post_init__(self) -> None:
        if not self.model or not self.input:
            raise ValueError("model and input are required")
        _positive(self, "max_length", "learning_rate", "num_train_epochs", "per_device_train_batch_size",
                  "gradient_accumulation_steps")
        if self.truncation not in ("head_tail", "head", "tail"):
            raise ValueError(f"truncation must be head_tail, head or tail, got {self.truncation!r}")
        if self.max_question_tokens < 0:
            raise ValueError(f"max_question_tokens must be >= 0, got {self.max_question_tokens}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"max_steps must be -1 or > 0, got {self.max_steps}")
