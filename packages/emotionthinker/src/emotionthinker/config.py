"""Typed configs: prosody extraction, annotation, GRPO-PTR training, inference and evaluation.

Defaults are the released EmotionCoT pipeline's constants (``EmotionCoT/pipeline/*.py``, tagged [R] in the spec)
where they exist; GRPO-PTR knobs the paper does not give ([U] in the spec) carry our default and say so.
"""

from __future__ import annotations

import dataclasses

from rlcore.backends import BACKEND_HELP, BACKENDS
from rlcore.cli import option

__all__ = ["ProsodyConfig", "RunConfig", "AnnotateConfig", "PTRConfig", "TrainConfig", "InferConfig", "EvalConfig"]

SCHEDULES = ("step", "linear", "sigmoid", "constant", "anneal")


def _positive(obj, *names: str) -> None:
    for n in names:
        if getattr(obj, n) <= 0:
            raise ValueError(f"{n} must be > 0, got {getattr(obj, n)!r}")


def _nonneg(obj, *names: str) -> None:
    for n in names:
        if getattr(obj, n) < 0:
            raise ValueError(f"{n} must be >= 0, got {getattr(obj, n)!r}")


@dataclasses.dataclass
class ProsodyConfig:
    """Signal-processing constants of the prosody extractor (all from the released pipeline [R])."""

    sample_rate: int = option(16000, "analysis sample rate; other rates are resampled (pipeline: mono 16 kHz)")
    hop_length: int = option(160, "hop in samples (10 ms)")
    pitch_frame_length: int = option(1024, "pYIN frame in samples (64 ms)")
    energy_frame_length: int = option(400, "RMS/VAD frame in samples (25 ms)")
    fmin: float = option(55.0, "pYIN lowest F0 (Hz)")
    fmax: float = option(500.0, "pYIN highest F0 (Hz)")
    vad_rel_db: float = option(35.0, "VAD threshold = p95 dB - this")
    vad_spread_db: float = option(20.0, "if p95-p5 spread exceeds this, threshold >= p5 + vad_floor_margin_db")
    vad_floor_margin_db: float = option(6.0, "margin above the p5 floor in wide-spread files (dB)")
    vad_max_db_below_peak: float = option(15.0, "threshold never closer than this to p95 (dB)")
    vad_bridge_ms: float = option(60.0, "non-speech gaps shorter than this are bridged (ms)")
    vad_min_speech_ms: float = option(50.0, "speech runs shorter than this are dropped (ms)")
    digital_silence_dbfs: float = option(-100.0, "frames at or below this level are never speech (ours: guards all-zero files)")
    second_pass: bool = option(True, "re-run pYIN in [0.6, 2.0] x first-pass median")
    second_pass_low: float = option(0.6, "second-pass fmin as a fraction of the first-pass median")
    second_pass_high: float = option(2.0, "second-pass fmax as a multiple of the first-pass median")
    second_pass_min_voiced: int = option(10, "second pass only with at least this many voiced frames")
    octave_local_kernel: int = option(9, "running-median kernel of the local octave repair (frames)")
    octave_local_passes: int = option(2, "passes of the local octave repair")
    octave_local_min_gain_st: float = option(6.0, "a local octave shift is applied only if it gains this many semitones")
    octave_global_far_st: float = option(9.0, "global repair looks at frames farther than this from the median (st)")
    octave_global_near_st: float = option(6.0, "...and shifts them by an octave if that lands within this (st)")
    reliable_min_voiced: int = option(25, "f0_reliable needs at least this many voiced speech frames")
    reliable_min_voiced_share: float = option(0.20, "f0_reliable needs this voiced share of speech frames")
    intonation_medfilt: int = option(5, "median-filter kernel on the semitone contour")
    intonation_medfilt_mode: str = option("nearest", "median-filter edge padding (released: nearest; scipy.ndimage modes)")
    intonation_savgol_window: int = option(9, "Savitzky-Golay window")
    intonation_savgol_order: int = option(2, "Savitzky-Golay polynomial order")
    dynamics_min_voiced_s: float = option(0.25, "dynamics need this much voiced time (s)")
    shape_min_voiced_s: float = option(0.5, "shape needs this much voiced time (s)")
    flat_below_st: float = option(3.0, "p95-p5 below this -> flat (st)")
    expressive_above_st: float = option(9.0, "p95-p5 above this -> expressive (st)")
    shape_delta_st: float = option(2.0, "|last-quarter - first-quarter median| for rising/falling (st)")
    turn_depth_st: float = option(2.0, "|quadratic depth vs chord midpoint| for a turn (st)")
    turn_min_r2_gain: float = option(0.05, "R^2 gain of the quadratic over the line for a turn")
    turn_vertex_range: tuple[float, float] = option((0.25, 0.75), "vertex position range (normalised time) for a turn")
    pause_s: float = option(0.3, "a voiced gap longer than this is a pause (confidence x 0.7 each)")
    confidence_full_voiced_factor: float = option(2.0, "confidence duration factor reaches 1 at this x shape_min_voiced_s (released: 2 -> 1.0 s)")
    min_confidence: float = option(0.15, "intonation below this confidence -> 'uncertain'")

    def __post_init__(self) -> None:
        _positive(self, "sample_rate", "hop_length", "pitch_frame_length", "energy_frame_length", "fmin", "fmax",
                  "octave_local_kernel", "intonation_medfilt", "intonation_savgol_window")
        if self.fmin >= self.fmax:
            raise ValueError(f"fmin ({self.fmin}) must be below fmax ({self.fmax})")
        if self.octave_local_kernel % 2 == 0 or self.intonation_medfilt % 2 == 0:
            raise ValueError("octave_local_kernel and intonation_medfilt must be odd")
        if self.intonation_medfilt_mode not in ("nearest", "reflect", "mirror", "wrap", "constant"):
            raise ValueError(f"intonation_medfilt_mode must be a scipy.ndimage mode, got {self.intonation_medfilt_mode!r}")
        if self.intonation_savgol_order >= self.intonation_savgol_window:
            raise ValueError("intonation_savgol_order must be below intonation_savgol_window")
        if not 0 < self.second_pass_low < 1 < self.second_pass_high:
            raise ValueError("second_pass_low must be in (0, 1) and second_pass_high > 1")
        self.turn_vertex_range = tuple(self.turn_vertex_range)
        if len(self.turn_vertex_range) != 2 or not 0 <= self.turn_vertex_range[0] < self.turn_vertex_range[1] <= 1:
            raise ValueError(f"turn_vertex_range must be (lo, hi) within [0, 1], got {self.turn_vertex_range}")


@dataclasses.dataclass
class RunConfig:
    """How ``emotionthinker prosody`` runs over files (not the signal constants: see ``ProsodyConfig``)."""

    output: str = option("", "JSONL file for the results (default: print JSONL to stdout)")
    workers: int = option(0, "worker processes (0 = one per CPU core, 1 = serial in this process)")
    recursive: bool = option(True, "search folders recursively for audio files")
    transcripts: str = option("", "optional JSONL with audio_path + transcription (else sidecar .txt files)")
    prosody_config: str = option("", "optional YAML/TOML/JSON file overriding ProsodyConfig constants")

    def __post_init__(self) -> None:
        _nonneg(self, "workers")


@dataclasses.dataclass
class AnnotateConfig:
    """``emotionthinker annotate``: prosody + calibrated levels + caption for an EmotionCoT-style JSONL."""

    input: str = option("", "input JSONL (audio_path, transcription; optional dataset, gender, emotion)")
    output: str = option("", "output JSONL (input fields + pitch/energy/speed levels, intonation, caption)")
    audio_root: str = option("", "folder that relative audio_path values are resolved against (default: the JSONL's)")
    percentiles: tuple[float, float] = option((100 / 3, 200 / 3), "cut percentiles (released: exact tertiles)")
    min_group: int = option(50, "smallest corpus(/gender) group with its own cuts; smaller ones use the pooled fallback")
    pooled_needs_min_group: bool = option(True, "a pooled fallback group also needs min_group members, else no level (released)")
    calibration: str = option("", "reuse the cut points in this JSON file instead of fitting them on the input")
    save_calibration: str = option("", "write the cut points used to this JSON file (default: <output>.calibration.json)")
    workers: int = option(0, "worker processes for extraction (0 = one per CPU core)")
    prosody_config: str = option("", "optional YAML/TOML/JSON file overriding ProsodyConfig constants")

    def __post_init__(self) -> None:
        if not self.input or not self.output:
            raise ValueError("--input and --output are required")
        self.percentiles = tuple(float(p) for p in self.percentiles)
        if len(self.percentiles) != 2 or not 0 < self.percentiles[0] < self.percentiles[1] < 100:
            raise ValueError(f"percentiles must be two increasing values in (0, 100), got {self.percentiles}")
        _positive(self, "min_group")
        _nonneg(self, "workers")


@dataclasses.dataclass
class PTRConfig:
    """GRPO-PTR reward: ``r = r_format + r_outcome + w_t * tau * r_reason`` (spec 'GRPO-PTR reward')."""

    schedule: str = option("linear", "w_t shape: step | linear | sigmoid | constant | anneal (Sophia) [U: ours]")
    w_max: float = option(1.0, "cap of the reasoning-reward weight w_t [U: ours]")
    t0: int = option(50, "step where the reasoning reward starts (step: switch; ramps: start) [U: ours]")
    t1: int = option(150, "step where linear/sigmoid ramps reach w_max [U: ours]")
    anneal_alpha: float = option(0.3, "anneal schedule alpha * exp(-t/T) (Sophia's constants, for comparison)")
    anneal_T: float = option(500.0, "anneal schedule time constant T (Sophia)")
    use_trust: bool = option(True, "scale the reasoning reward by the group trust weight tau")
    gate_uniform_groups: bool = option(True, "no reasoning reward when a group is all right or all wrong (Sophia (i))")
    uniform_high: float = option(0.9, "a group is all-right when every answer score >= this")
    uniform_low: float = option(0.1, "a group is all-wrong when every answer score <= this")
    judge_min_answer: float = option(0.0, "judge only rollouts with answer score >= this (Sophia: 0.2; see README)")
    correct_threshold: float = option(0.5, "answer score >= this counts as correct for tau")
    format_weight: float = option(1.0, "weight of r_format in the sum")
    outcome_weight: float = option(1.0, "weight of r_outcome in the sum")

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        _nonneg(self, "w_max", "t0", "anneal_alpha", "format_weight", "outcome_weight")
        _positive(self, "anneal_T")
        if self.schedule in ("linear", "sigmoid") and self.t1 <= self.t0:
            raise ValueError(f"t1 ({self.t1}) must be greater than t0 ({self.t0}) for a {self.schedule} ramp")
        if not 0 <= self.uniform_low < self.correct_threshold < self.uniform_high <= 1:
            raise ValueError("need 0 <= uniform_low < correct_threshold < uniform_high <= 1")


OUTCOME_REWARDS = ("exact", "similarity")


def _check_engine(obj) -> None:
    if obj.backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {obj.backend!r}")
    _positive(obj, "tensor_parallel_size")
    if not 0 < obj.gpu_memory_utilization <= 1:
        raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {obj.gpu_memory_utilization}")


@dataclasses.dataclass
class TrainConfig(PTRConfig):
    """``emotionthinker train``: GRPO-PTR on EmotionCoT records (PTR fields inherited from ``PTRConfig``)."""

    model: str = option("builtin:tiny-audio", "policy: 'builtin:tiny-audio' (random tiny Qwen2-Audio) or a Qwen2.5-Omni/Qwen2-Audio path")
    input: str = option("", "EmotionCoT JSONL (audio_path, emotion, ...)")
    audio_root: str = option("", "folder for relative audio_path values (default: the JSONL's folder)")
    output_dir: str = option("runs/emotionthinker", "where metrics.jsonl, checkpoints and the final model go")
    judge: str = option("prosody-rubric", "reasoning judge: a registered name or 'module:attr' returning scores in [0, 1]")
    outcome_reward: str = option("exact", "r_outcome: exact (0/1, paper) | similarity (valence-arousal similarity, EMO-RL)")
    similarity_file: str = option("", "similarity matrix file for outcome_reward=similarity (default: built-in valence-arousal)")
    steps: int = option(2, "optimizer steps")
    prompts_per_step: int = option(2, "distinct prompts (clips) per step and process")
    group_size: int = option(4, "rollouts per prompt G")
    max_new_tokens: int = option(16, "completion length cap (paper inference: 2048)")
    temperature: float = option(1.0, "sampling temperature")
    learning_rate: float = option(1e-5, "AdamW learning rate [U]")
    epsilon: float = option(0.2, "PPO clip epsilon")
    beta: float = option(0.0, "k3 KL coefficient against the initial policy (TRL default 0)")
    loss_agg: str = option("token-mean", "loss aggregation (rlcore.pg modes)")
    lora_r: int = option(0, "LoRA rank on the language model (0 = full fine-tuning); paper-scale recipe: 64")
    lora_alpha: int = option(128, "LoRA alpha")
    lora_dropout: float = option(0.05, "LoRA dropout")
    lora_target_modules: str = option("q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", "comma-separated module names LoRA adapts")
    gradient_checkpointing: bool = option(False, "activation checkpointing in the policy (memory for compute)")
    save_steps: int = option(0, "write output_dir/checkpoint-N every N steps (0 = none)")
    resume: str = option("", "resume from 'latest' (newest checkpoint in output_dir) or a checkpoint path")
    backend: str = option("hf", BACKEND_HELP["backend"])
    tensor_parallel_size: int = option(1, BACKEND_HELP["tensor_parallel_size"])
    gpu_memory_utilization: float = option(0.9, BACKEND_HELP["gpu_memory_utilization"])
    seed: int = option(0, "seed")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    dtype: str = option("auto", "auto, bf16, fp16 or fp32")
    save: bool = option(False, "save the final policy under output_dir/final")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.input:
            raise ValueError("--input is required (an EmotionCoT JSONL)")
        _positive(self, "steps", "prompts_per_step", "max_new_tokens", "temperature", "learning_rate")
        if self.group_size < 2:
            raise ValueError(f"group_size must be >= 2 for group-relative advantages, got {self.group_size}")
        if self.outcome_reward not in OUTCOME_REWARDS:
            raise ValueError(f"outcome_reward must be one of {OUTCOME_REWARDS}, got {self.outcome_reward!r}")
        _nonneg(self, "epsilon", "beta", "lora_r", "save_steps")
        _check_engine(self)


@dataclasses.dataclass
class InferConfig:
    """``emotionthinker infer``: run the policy on EmotionCoT records, write completions + parsed labels."""

    model: str = option("builtin:tiny-audio", "'builtin:tiny-audio' or a Qwen2.5-Omni/Qwen2-Audio path")
    input: str = option("", "EmotionCoT JSONL")
    audio_root: str = option("", "folder for relative audio_path values")
    output: str = option("predictions.jsonl", "predictions JSONL (streamed; a rerun skips records already there)")
    max_new_tokens: int = option(256, "completion cap (official inference: 2048)")
    temperature: float = option(0.0, "0 = greedy")
    batch_size: int = option(4, "clips per generate call")
    limit: int = option(0, "only the first N records (0 = all)")
    backend: str = option("hf", BACKEND_HELP["backend"])
    tensor_parallel_size: int = option(1, BACKEND_HELP["tensor_parallel_size"])
    gpu_memory_utilization: float = option(0.9, BACKEND_HELP["gpu_memory_utilization"])
    seed: int = option(0, "seed")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    dtype: str = option("auto", "auto, bf16, fp16 or fp32")

    def __post_init__(self) -> None:
        if not self.input:
            raise ValueError("--input is required (an EmotionCoT JSONL)")
        _positive(self, "max_new_tokens", "batch_size")
        _nonneg(self, "temperature", "limit")
        _check_engine(self)


@dataclasses.dataclass
class EvalConfig:
    """``emotionthinker eval``: accuracy, UA, soft-label agreement, per-class recall, confusion PNG, judge scores."""

    input: str = option("", "predictions JSONL (emotion + completion or prediction per record)")
    output_dir: str = option("eval", "folder for metrics.json and confusion_matrix.png")
    judge: str = option("prosody-rubric", "judge for reasoning scores ('' to skip)")
    similarity_file: str = option("", "similarity matrix for soft-label agreement (default: built-in valence-arousal)")

    def __post_init__(self) -> None:
        if not self.input:
            raise ValueError("--input is required (a predictions JSONL)")
