"""EmotionThinker (ICLR 2026 Oral): prosody-aware speech emotion reasoning with GRPO-PTR.

Re-exports are lazy so ``emotionthinker --help`` does not import torch or librosa.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "ProsodyConfig": "config", "PTRConfig": "config", "TrainConfig": "config",
    "extract_prosody": "prosody", "extract_prosody_file": "prosody", "load_audio": "prosody",
    "ProsodyError": "prosody", "extract_many": "batch", "calibrate_levels": "calibration",
    "compute_caption": "caption", "compute_intonation": "intonation", "count_phones": "phones",
    "LABELS": "policy", "parse_answer": "policy", "AudioTextPolicy": "policy", "load_policy": "policy",
    "tiny_audio_policy": "tiny", "compute_ptr_weight": "ptr", "compute_trust_weights": "ptr",
    "compute_judge_mask": "ptr", "compute_ptr_rewards": "ptr", "format_reward": "rewards",
    "accuracy_reward": "rewards", "get_ptr_reasoning_reward": "rewards", "get_judge": "judge",
    "train_ptr": "trainer", "load_emotioncot": "data", "compute_emotion_metrics": "evaluation",
    "SimilarityReward": "similarity", "load_similarity": "similarity", "fit_calibration": "calibration",
    "load_calibration": "calibration", "save_calibration": "calibration", "is_think_answer_format": "rewards",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'emotionthinker' has no attribute {name!r}")
