"""The speech-LLM policy: task prompt, 9-label parsing, and a wrapper over transformers audio-text models.

Task format from the official ``scripts/emotionthinker_infer.py`` [R]: the R1 system prompt, a user turn with the
audio then the question listing the nine options ("contempt or disgust" is ONE option). The wrapper drives any
processor + model pair whose processor takes ``text=`` and ``audio=`` and whose model takes the processor's
output in ``generate``/``forward``: Qwen2.5-Omni's thinker, Qwen2-Audio, and the tiny test model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["LABELS", "LABEL_ALIASES", "SYSTEM_PROMPT", "QUESTION", "normalize_label", "parse_answer", "build_messages",
           "AudioTextPolicy", "load_policy"]

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
    """A transformers audio-text model + its processor, as a sampling policy with per-token log-probs.

    ``prompt_text`` renders the chat template (audio as the processor's audio placeholder); ``encode`` runs the
    processor on texts + waveforms; ``generate`` samples; ``completion_logprobs`` scores completions given the
    same audio (for the policy-gradient loss). The prompt ids are left-padded.
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

    def encode(self, audios: Sequence[np.ndarray], texts: Sequence[str] | None = None) -> dict[str, Any]:
        """Processor output for ``len(audios)`` prompts (same prompt text unless ``texts`` given), on the model device."""
        texts = list(texts) if texts is not None else [self.prompt_text()] * len(audios)
        self.tokenizer.padding_side = "left"
        enc = self.processor(text=texts, audio=list(audios), sampling_rate=self.sample_rate, return_tensors="pt",
                             padding=True)
        return {k: v.to(self.device) for k, v in enc.items() if hasattr(v, "to")}

    def generate(self, audios: Sequence[np.ndarray], max_new_tokens: int, temperature: float = 1.0,
                 num_return_sequences: int = 1) -> tuple[dict[str, Any], Any, list[str]]:
        """Sample ``num_return_sequences`` completions per clip (rows grouped per clip, contiguous).

        Returns:
            ``(inputs, completion_ids (B, T), texts)``: ``inputs`` the processor output repeated per sample,
            ``completion_ids`` right-padded with pad after EOS, ``texts`` decoded without special tokens.
        """
        import torch

        inputs = self.encode(audios)
        if num_return_sequences > 1:
            inputs = {k: v.repeat_interleave(num_return_sequences, dim=0) for k, v in inputs.items()}
        kw: dict[str, Any] = {"do_sample": temperature > 0, "max_new_tokens": max_new_tokens,
                              "pad_token_id": self.tokenizer.pad_token_id}
        if temperature > 0:
            kw |= {"temperature": temperature, "top_k": 0, "top_p": 1.0}
        with torch.no_grad():
            out = self.model.generate(**inputs, **kw)
        seqs = out.sequences if hasattr(out, "sequences") else out
        completion_ids = seqs[:, inputs["input_ids"].shape[1]:]  # (B, T)
        completion_ids = _mask_after_eos(completion_ids, self.tokenizer.eos_token_id, self.tokenizer.pad_token_id)
        texts = self.tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
        return inputs, completion_ids, texts

    def completion_logprobs(self, inputs: dict[str, Any], completion_ids, temperature: float = 1.0):
        """Per-token log-probs ``(B, T)`` of ``completion_ids`` after the prompt in ``inputs`` (with grad)."""
        import torch

        prompt_len = inputs["input_ids"].shape[1]
        ids = torch.cat([inputs["input_ids"], completion_ids], dim=1)  # (B, P+T)
        mask = torch.cat([inputs["attention_mask"], torch.ones_like(completion_ids)], dim=1)
        extra = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
        logits = self.model(input_ids=ids, attention_mask=mask, **extra).logits  # (B, P+T, V)
        logits = logits[:, prompt_len - 1:-1].float() / temperature  # (B, T, V)
        return torch.log_softmax(logits, dim=-1).gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)


def _mask_after_eos(ids, eos_id: int | None, pad_id: int | None):
    """Replace every token after the first EOS with pad (generate may keep sampling in a batch)."""
    import torch

    if eos_id is None:
        return ids
    is_eos = ids == eos_id
    after = (torch.cumsum(is_eos.int(), dim=1) - is_eos.int()) > 0  # strictly after the first EOS
    return ids.masked_fill(after, pad_id if pad_id is not None else eos_id)


def load_policy(ref: str, device=None, dtype=None) -> AudioTextPolicy:
    """``'tiny'`` -> the random tiny Qwen2-Audio; else a local/hub checkpoint of Qwen2.5-Omni or Qwen2-Audio.

    Qwen2.5-Omni loads only its thinker (text output; the talker is not needed for emotion reasoning).

    Raises:
        ValueError: a checkpoint whose ``model_type`` is not supported (named).
    """
    import transformers
    from rlcore.device import get_device, resolve_dtype

    from .tiny import tiny_audio_policy

    dev = get_device(device)
    if ref == "tiny":
        policy = tiny_audio_policy()
        policy.model.to(dev)
        return policy
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
