"""Verbalised prosody: a caption for a record, and the CoT-writing prompt of the annotation pipeline.

The paper has GPT-4o turn the prosody fields into a 50-200 word reasoning trace (App. B.3, Fig. 5). We do not call
an API: ``annotate`` writes the deterministic caption and the ready-to-send prompt (``cot_prompt``); any LLM can
then produce ``cot_analysis``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["compute_caption", "build_cot_prompt", "IGNORED_INTONATION"]

IGNORED_INTONATION = ("uncertain", "too_short", None)


def _stressed(rec: dict[str, Any]) -> list[str]:
    words = rec.get("stressed_words") or rec.get("stressed_word") or []
    return [words] if isinstance(words, str) else [str(w) for w in words]


def compute_caption(rec: dict[str, Any]) -> str:
    """One-paragraph description of the clip's prosody from its level fields (unknown levels are left out).

    Example:
        >>> compute_caption({"gender": "female", "pitch_level": "high", "energy_level": "low",
        ...                  "speed_level": "fast", "intonation": "rising", "transcription": "Really?"})
        'A female speaker says "Really?" with high pitch, low energy and a fast speaking rate. The intonation is rising.'
    """
    who = " ".join(x for x in (rec.get("age_level"), rec.get("gender")) if x) or "The"
    who = f"A {who.lower()} speaker" if who != "The" else "The speaker"
    text = (rec.get("transcription") or "").strip()
    says = f' says "{text}"' if text else " speaks"
    parts = []
    if rec.get("pitch_level"):
        parts.append(f"{rec['pitch_level']} pitch")
    if rec.get("energy_level"):
        parts.append(f"{rec['energy_level']} energy")
    if rec.get("speed_level"):
        parts.append(f"a {rec['speed_level']} speaking rate")
    joined = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1] if parts else ""
    out = f"{who}{says}" + (f" with {joined}." if joined else ".")
    if rec.get("intonation") not in IGNORED_INTONATION:
        out += f" The intonation is {rec['intonation']}."
    stressed = _stressed(rec)
    if stressed:
        out += " Stressed words: " + ", ".join(f'"{w}"' for w in stressed) + "."
    return out


def build_cot_prompt(rec: dict[str, Any]) -> str:
    """The CoT-writing instruction for an LLM (the paper's App. B.3 requirements, our wording).

    The fields are those the paper's prompt receives; intonation is marked to be ignored when uncertain.
    """
    into = rec.get("intonation")
    fields = {
        "groundtruth_emotion": rec.get("emotion"),
        "transcription": rec.get("transcription"),
        "speaker_gender": rec.get("gender"),
        "speaker_age": rec.get("age_level"),
        "pitch_level": rec.get("pitch_level"),
        "energy_level": rec.get("energy_level"),
        "speed_level": rec.get("speed_level"),
        "intonation_contour": into if into not in IGNORED_INTONATION else "unreliable (ignore it)",
        "stressed_word": ", ".join(_stressed(rec)) or None,
    }
    lines = "\n".join(f"- {k}: {v if v is not None else 'unknown'}" for k, v in fields.items())
    return (
        "You are analysing a speech clip to explain the speaker's emotion. Write the reasoning of a listener who "
        "does NOT know the label in advance: ground it in acoustic and prosodic cues (pitch, energy, speed, "
        "intonation, stressed words), quote the transcript, and blend in the speaker profile. Ignore the "
        "intonation if it is marked unreliable. Use 50-200 words and do not open with the emotion label; end "
        "with the conclusion the cues support.\n\nClip attributes:\n" + lines
    )
