"""EmotionCoT JSONL records: ``audio_path``, ``transcription``, ``emotion``, prosody levels, ``cot_analysis``.

The released annotations have no audio (corpora licences); ``audio_path`` is resolved against ``audio_root``
(default: the JSONL's folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlcore.io import DataError, iter_jsonl

from .policy import LABELS, normalize_label

__all__ = ["EMOTIONCOT_FIELDS", "load_emotioncot"]

EMOTIONCOT_FIELDS = ("audio_path", "transcription", "emotion", "pitch_level", "energy_level", "speed_level",
                     "stressed_words", "intonation", "gender", "age_level", "cot_analysis")


def load_emotioncot(path: str | Path, audio_root: str | Path | None = None, check_audio: bool = True) -> list[dict[str, Any]]:
    """Read EmotionCoT records; ``emotion`` normalised to the nine labels, ``audio_file`` the resolved path.

    Raises:
        DataError: a record without ``audio_path``/``emotion``, an emotion outside the nine labels, or (with
            ``check_audio``) a missing audio file: the message names file:line.
    """
    path = Path(path)
    root = Path(audio_root) if audio_root else path.parent
    out = []
    for i, rec in enumerate(iter_jsonl(path, required=("audio_path", "emotion")), 1):
        label = normalize_label(str(rec["emotion"]))
        if label is None:
            raise DataError(f"{path}: record {i}: emotion {rec['emotion']!r} is not one of {list(LABELS)}")
        audio = Path(rec["audio_path"])
        audio = audio if audio.is_absolute() else root / audio
        if check_audio and not audio.is_file():
            raise DataError(f"{path}: record {i}: audio file not found: {audio}")
        out.append(dict(rec) | {"emotion": label, "audio_file": str(audio)})
    if not out:
        raise DataError(f"{path}: no records")
    return out
