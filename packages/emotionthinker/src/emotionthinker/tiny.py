"""A tiny random Qwen2-Audio (audio encoder + Qwen2 LM, ~130k parameters) built from configs, for CPU tests.

Same classes as the real Qwen2-Audio (``Qwen2AudioForConditionalGeneration`` + ``Qwen2AudioProcessor`` with a
Whisper feature extractor), shrunk: 16 mel bins, 2-second feature windows (200 frames -> 50 audio tokens), one
encoder layer, and rlcore's tiny byte-level tokenizer with the three audio special tokens added.
"""

from __future__ import annotations

import copy
import functools

from .policy import AudioTextPolicy

__all__ = ["AUDIO_CHAT_TEMPLATE", "tiny_audio_processor", "tiny_audio_model", "tiny_audio_policy"]

# Qwen-style chat template; an audio part renders as the Qwen2-Audio placeholder the processor expands.
AUDIO_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for p in m['content'] %}"
    "{% if p['type'] == 'audio' %}<|audio_bos|><|AUDIO|><|audio_eos|>{% else %}{{ p['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
N_MELS = 16
CHUNK_SECONDS = 2


@functools.lru_cache(maxsize=1)
def _tokenizer():
    from rlcore.testing import tiny_tokenizer

    tok = copy.deepcopy(tiny_tokenizer())  # rlcore's cached instance stays untouched
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>",
                                                          "<|audio_eos|>"]})
    tok.chat_template = AUDIO_CHAT_TEMPLATE
    return tok


def tiny_audio_processor():
    """A ``Qwen2AudioProcessor``: Whisper features (16 mels, 2 s windows) + the tiny tokenizer."""
    from transformers import Qwen2AudioProcessor, WhisperFeatureExtractor

    fe = WhisperFeatureExtractor(feature_size=N_MELS, sampling_rate=16000, hop_length=160,
                                 chunk_length=CHUNK_SECONDS, n_fft=400)
    tok = copy.deepcopy(_tokenizer())
    return Qwen2AudioProcessor(feature_extractor=fe, tokenizer=tok, chat_template=AUDIO_CHAT_TEMPLATE)


def tiny_audio_model(seed: int = 0):
    """A random-init tiny ``Qwen2AudioForConditionalGeneration`` (fp32, eval mode), matched to the processor."""
    import torch
    from rlcore.testing import tiny_qwen2_config
    from transformers import Qwen2AudioConfig, Qwen2AudioEncoderConfig, Qwen2AudioForConditionalGeneration

    tok = _tokenizer()
    enc = Qwen2AudioEncoderConfig(num_mel_bins=N_MELS, encoder_layers=1, encoder_attention_heads=2,
                                  encoder_ffn_dim=32, d_model=16, max_source_positions=CHUNK_SECONDS * 50)
    cfg = Qwen2AudioConfig(audio_config=enc, text_config=tiny_qwen2_config(tok),
                           audio_token_id=tok.convert_tokens_to_ids("<|AUDIO|>"))
    torch.manual_seed(seed)
    return Qwen2AudioForConditionalGeneration(cfg).eval()


def tiny_audio_policy(seed: int = 0) -> AudioTextPolicy:
    """The tiny model and processor wrapped as an :class:`~emotionthinker.policy.AudioTextPolicy`."""
    return AudioTextPolicy(tiny_audio_model(seed), tiny_audio_processor())
