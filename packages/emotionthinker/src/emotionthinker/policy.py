"""The speech-LLM policy: task prompt, 9-label parsing, and a wrapper over transformers audio-text models.

Task format from the official ``scripts/emotionthinker_infer.py`` [R]: the R1 system prompt, a user turn with the
audio then the question listing the nine options ("contempt or disgust" is ONE option). The wrapper drives any
processor + model pair whose processor takes ``text=`` and ``audio=`` and whose model takes the processor's
output in ``forward``: Qwen2.5-Omni's thinker, Qwen2-Audio, and the tiny test model. Generation and scoring are
rlcore's (``rlcore.rollout``); this module only renders and encodes prompts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["LABELS", "LABEL_ALIASES", "SYSTEM_PROMPT", "QUESTION", "normalize_label", "parse_answer", "build_messages",
           "AudioTextPolicy", "BUILTIN_TINY", "load_policy"]

LABELS = ("neutral", "happy", "sad", "angry", "contempt or disgust", "confused", "whisper", "surprise", "fear")
SYSTEM_PROMPT = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The "
    "assistant first thinks about the reasoning process in the mind and then provides the user with the answer. "
    "The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think><answer> answer here </answer>."
)
QUESTION = ("<audio>What is the emotion expressed in this audio clip? Please choose one from the following options: "
            "neutral, happy, sad, angry, contempt or disgust, confused, whisper, surprise, fear.")
# Spellings seen in corpora / model outputs -> the option they mean.
LABEL_ALIASES = {
    "anger": "angry", "happiness": "happy", "joy": "happy", "sadness": "sad", "surprised": "surprise",
    "fearful": "fear", "disgust": "contempt or disgust", "contempt": "contempt or disgust",
    "disgusted": "contempt or disgust", "contempt/disgust": "contempt or disgust", "confusion": "confused",
    "whispering": "whisper", "neutrality": "neutral",
}
_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL | re.IGNORECASE)


def normalize_label(text: str | None) -> str | None:
    """Map free text to one of :data:`LABELS` (case/whitespace/punctuation-insensitive), else ``None``.

    Example:
        >>> normalize_label("  Contempt  or DISGUST. "), normalize_label("anger"), normalize_label("bored")
        ('contempt or disgust', 'angry', None)
    """
    if text is None:
        return None
    t = " ".join(re.sub(r"[^a-z/ ]", " ", text.lower()).split())
    if t in LABELS:
        return t
    return LABEL_ALIASES.get(t)


def parse_answer(completion: str) -> str | None:
    """The label inside the LAST ``<answer>`` block (an unclosed final block counts), normalised; else ``None``.

    Example:
        >>> parse_answer("<think>high pitch</think><answer>sad</answer> <answer> Happy </answer>")
        'happy'
    """
    blocks = _ANSWER.findall(completion)
    return normalize_label(blocks[-1]) if blocks else None


def build_messages(audio: Any = None) -> list[dict[str, Any]]:
    """Chat messages of one query: system prompt, then user [audio, question]."""
    return [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
        {"role": "user", "content": [{"type": "audio", "audio": audio}, {"type": "text", "text": QUESTION}]},
    ]


class AudioTextPolicy:
    """A transformers audio-text model + its processor: prompt rendering and encoding for ``rlcore.rollout``.

    Sampling and log-prob scoring go through rlcore (``make_generator(policy.model, policy.tokenizer)`` /
    ``score_continuations``): :meth:`encode` gives each clip's expanded prompt ids (the processor replaces the audio
    placeholder by one ``<|AUDIO|>`` per audio frame) and the audio features as ``mm_inputs`` (first dimension =
    clips), and :meth:`placeholder_token_ids` the ids that must never be sampled (a sampled ``<|AUDIO|>`` makes the
    prompt+completion hold more audio tokens than there are audio features, and the loss pass fails).
    """

    def __init__(self, model, processor, sample_rate: int = 16000):
        self.model = model
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.sample_rate = sample_rate

    @property
    def device(self):
        return next(self.model.parameters()).device

    def prompt_text(self) -> str:
        """The rendered prompt (audio placeholder included), ending with the assistant header."""
        return self.processor.apply_chat_template(build_messages(None), add_generation_prompt=True, tokenize=False)

    def encode(self, audios: Sequence[np.ndarray]) -> tuple[list[list[int]], dict[str, Any]]:
        """``(prompt_ids, mm_inputs)`` for ``len(audios)`` clips: unpadded expanded ids and the audio features.

        ``mm_inputs`` holds every processor output other than ``input_ids`` / ``attention_mask`` (Qwen2-Audio:
        ``input_features (N, mels, frames)``, ``feature_attention_mask (N, frames)``), one row per clip.
        """
        self.tokenizer.padding_side = "left"
        enc = self.processor(text=[self.prompt_text()] * len(audios), audio=list(audios),
                             sampling_rate=self.sample_rate, return_tensors="pt", padding=True)
        ids = [row[m.bool()].tolist() for row, m in zip(enc["input_ids"], enc["attention_mask"], strict=True)]
        mm = {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask") and hasattr(v, "shape")}
        return ids, mm

    def encode_raw(self, audios: Sequence[np.ndarray]) -> tuple[list[list[int]], dict[str, Any]]:
        """For the vLLM backend: unexpanded prompt ids (one audio placeholder) and the raw waveforms.

        vLLM expands the placeholder and extracts features itself from ``multi_modal_data`` (raw media).
        """
        ids = self.tokenizer(self.prompt_text(), add_special_tokens=False).input_ids
        return [list(ids) for _ in audios], {"audio": [(np.asarray(a), self.sample_rate) for a in audios]}

    def placeholder_token_ids(self) -> list[int]:
        """Media placeholder ids (audio/image/video tokens of the model config and tokenizer): never to be sampled."""
        ids: set[int] = set()
        cfg = getattr(self.model, "config", None)
        for c in (cfg, getattr(cfg, "thinker_config", None)):
            for name in ("audio_token_id", "audio_token_index", "image_token_id", "image_token_index",
                         "video_token_id", "video_token_index"):
                v = getattr(c, name, None) if c is not None else None
                if isinstance(v, int) and v >= 0:
                    ids.add(v)
        vocab = self.tokenizer.get_vocab()
        for tok in ("<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>", "<|IMAGE|>", "<|VIDEO|>", "<|vision_bos|>",
                    "<|vision_eos|>"):
            if tok in vocab:
                ids.add(int(vocab[tok]))
        return sorted(ids)


BUILTIN_TINY = ("builtin:tiny-audio", "tiny")


def load_policy(ref: str, device=None, dtype=None) -> AudioTextPolicy:
    """``builtin:tiny-audio`` (or ``tiny``) -> the random tiny Qwen2-Audio; else a Qwen2.5-Omni/Qwen2-Audio checkpoint.

    Qwen2.5-Omni loads only its thinker (text output; the talker is not needed for emotion reasoning).

    Raises:
        ValueError: a local-looking path that does not exist ("no model at ./x"), or a checkpoint whose
            ``model_type`` is not supported (named).
    """
    import transformers
    from rlcore.device import get_device, resolve_dtype

    from .tiny import tiny_audio_policy

    dev = get_device(device)
    if ref in BUILTIN_TINY:
        policy = tiny_audio_policy()
        policy.model.to(dev)
        return policy
    from rlcore.cli import check_model_ref

    ref = check_model_ref(ref)  # "no model at ./x" before any hub call
    cfg = transformers.AutoConfig.from_pretrained(ref)
    kw = {"dtype": resolve_dtype(dtype, dev)}
    if cfg.model_type == "qwen2_5_omni":
        full = transformers.Qwen2_5OmniForConditionalGeneration.from_pretrained(ref, **kw)
        full.disable_talker()  # text output only (official inference: return_audio=False)
        model = full.thinker
        processor = transformers.Qwen2_5OmniProcessor.from_pretrained(ref)
    elif cfg.model_type == "qwen2_audio":
        model = transformers.Qwen2AudioForConditionalGeneration.from_pretrained(ref, **kw)
        processor = transformers.AutoProcessor.from_pretrained(ref)
    else:
        raise ValueError(f"model {ref!r} has model_type {cfg.model_type!r}; supported: qwen2_5_omni, qwen2_audio, 'tiny'")
    return AudioTextPolicy(model.to(dev), processor)
