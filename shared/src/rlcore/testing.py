"""Offline, seeded fixtures shared by every package's tests.

Nothing here touches a hub: the tokenizer is a byte-level BPE trained in-process on a small built-in corpus,
models are random-init tiny configs. Everything is cached per process so a test suite pays once.

Example:
    >>> from rlcore.testing import tiny_tokenizer, tiny_causal_lm
    >>> tok = tiny_tokenizer(); model = tiny_causal_lm(tok)
    >>> model.config.vocab_size == len(tok)
    True

"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from types import SimpleNamespace
from typing import Any

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_CORPUS = [
    "The quick brown fox jumps over the lazy dog. 0123456789 + - * / = ( ) { } [ ] < > \\boxed{42}",
    "<think>First add 3 and 4 to get 7. Then multiply by 2 to get 14.</think> The answer is \\boxed{14}.",
    "<answer>Mary went to the kitchen. John moved to the garden. Where is Mary? kitchen</answer>",
    "Question: Which city is the capital of France? Passage 1: Paris is the capital. Answer: Paris",
    "Response A is more helpful than Response B because it follows the user's preferences closely.",
    "Write an essay of about 2000 words about the history of the sea. 写一篇关于大海的文章。",
    "Emotion: happy, sad, angry, neutral, surprised, fearful, contempt or disgust. Pitch is high.",
]


def _train_bpe(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return tok


@functools.lru_cache(maxsize=4)
def tiny_tokenizer(vocab_size: int = 384):
    """A byte-level BPE tokenizer trained in-process (cached): every string round-trips.

    Special tokens: ``<|endoftext|>`` (eos and pad), ``<|im_start|>``, ``<|im_end|>``; a Qwen-style chat template.
    Left padding, as batched generation wants it.
    """
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=_train_bpe(vocab_size),
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        padding_side="left",
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def tiny_qwen2_config(tokenizer=None, **overrides: Any):
    """A Qwen2-style config of about 100k parameters, matched to ``tokenizer``'s vocabulary."""
    from transformers import Qwen2Config

    tok = tokenizer if tokenizer is not None else tiny_tokenizer()
    kwargs: dict[str, Any] = dict(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    kwargs.update(overrides)
    return Qwen2Config(**kwargs)


def tiny_causal_lm(tokenizer=None, seed: int = 0, **overrides: Any):
    """A random-init tiny Qwen2 causal LM (fp32, eval mode), seeded so two calls give the same weights."""
    import torch
    from transformers import Qwen2ForCausalLM

    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(tiny_qwen2_config(tokenizer, **overrides))
    return model.eval()


def tiny_encoder(tokenizer=None, seed: int = 0, hidden_size: int = 32):
    """A random-init tiny BERT encoder (for embedder tests: Q-RAG, P-GenRM) and its tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    tok = tokenizer if tokenizer is not None else tiny_tokenizer()
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
    )
    return BertModel(cfg).eval(), tok


def save_tiny_causal_lm(path, tokenizer=None, seed: int = 0, **overrides: Any) -> str:
    """Write a tiny model + tokenizer in ``from_pretrained`` layout under ``path`` (for CLI tests)."""
    tok = tokenizer if tokenizer is not None else tiny_tokenizer()
    model = tiny_causal_lm(tok, seed=seed, **overrides)
    model.save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return str(path)


class TableLM:
    """A table-driven toy causal LM implementing rlcore's LM interface, small enough to enumerate.

    The next-token logits depend only on (position, previous token): ``logits = table[t, x_{t}]`` with a seeded
    random ``table`` of shape ``(max_len, V, V)``, scaled by ``sharpness``. Calling it like an HF model
    (``lm(input_ids, attention_mask=None, **ignored)``) returns an object with ``.logits`` ``(B, T, V)`` and
    ``.cache = .past_key_values = None`` (no KV cache: callers re-encode). ``exact_logprob`` gives the exact log-probability
    of any sequence, for distribution-level tests.
    """

    def __init__(self, vocab_size: int = 4, max_len: int = 16, seed: int = 0, sharpness: float = 1.5,
                 eos_token_id: int | None = None):
        import torch

        g = torch.Generator().manual_seed(seed)
        self.vocab_size = vocab_size
        self.max_len = max_len
        self.eos_token_id = eos_token_id
        self.table = torch.randn(max_len, vocab_size, vocab_size, generator=g) * sharpness  # (T, V, V)
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.config = SimpleNamespace(vocab_size=vocab_size, max_position_embeddings=max_len,
                                      eos_token_id=eos_token_id)

    def __call__(self, input_ids, attention_mask=None, **_: Any):
        import torch

        B, T = input_ids.shape
        if T > self.max_len:
            raise ValueError(f"TableLM supports sequences up to {self.max_len} tokens, got {T}")
        pos = torch.arange(T).expand(B, T)
        logits = self.table[pos, input_ids]  # (B, T, V)
        return SimpleNamespace(logits=logits, cache=None, past_key_values=None)

    def eval(self):
        return self

    def parameters(self):
        return iter([self.table])

    def exact_logprob(self, prefix: list[int], continuation: list[int]) -> float:
        """Log p(continuation | prefix) under the table."""
        import torch

        seq = prefix + continuation
        lp = torch.log_softmax(self.table[torch.arange(len(seq) - 1), torch.tensor(seq[:-1])], -1)  # (T-1, V)
        idx = torch.arange(len(prefix) - 1, len(seq) - 1)
        return float(lp[idx, torch.tensor(continuation)].sum())


# ---------------------------------------------------------------- generator fakes (rlcore.rollout)
@dataclasses.dataclass
class GenerateCall:
    """One recorded call: ``kind`` "generate" (a Generator) or "score" (``score_continuations``).

    ``prompt_ids`` are the encoded prompts (after chat templating), ``params`` the ``SamplingParams`` (None for
    "score"), ``mm_inputs`` the multimodal inputs or None, ``continuation_ids`` the scored continuations ("score").
    """

    kind: str
    prompt_ids: list[list[int]]
    params: Any
    mm_inputs: Any
    continuation_ids: list[list[int]] | None = None


@contextlib.contextmanager
def recording_generators():
    """Record every generate call (HF, vLLM, scripted) and every ``score_continuations`` call inside the block.

    Calls are recorded however the caller imported the function or class, and they still run.

    Example:
        >>> with recording_generators() as calls:  # doctest: +SKIP
        ...     run_my_verb()
        >>> assert calls and calls[0].kind == "generate"  # doctest: +SKIP

    """
    from rlcore import rollout

    calls: list[GenerateCall] = []

    def cb(kind, prompt_ids, params, mm_inputs, continuation_ids=None):
        calls.append(GenerateCall(kind, [list(p) for p in prompt_ids], params, mm_inputs,
                                  None if continuation_ids is None else [list(c) for c in continuation_ids]))

    with rollout._recorder(cb):
        yield calls


class ScriptedGenerator:
    """A :class:`rlcore.rollout.Generator` that returns given texts, for tests of loops around generation.

    Args:
        responses: a list of texts handed out in order, one per completion (prompt 0 sample 0, prompt 0 sample 1,
            ...), cycling when exhausted across calls; or a function ``prompt_text -> completion_text``.
        tokenizer: encodes the texts (``token_ids``) and decodes token-id prompts for the function form.

    Completions have zero log-probs; ``params.stop`` strings cut the text (finish "stop"), ``max_new_tokens``
    truncates it (finish "length"), else finish "eos". Calls are recorded by :func:`recording_generators`.
    """

    def __init__(self, responses, tokenizer):
        if not callable(responses) and not list(responses):
            raise ValueError("ScriptedGenerator needs at least one response")
        self.responses = responses if callable(responses) else list(responses)
        self.tokenizer = tokenizer
        self._next = 0

    def _text_for(self, prompt_text: str) -> str:
        if callable(self.responses):
            return str(self.responses(prompt_text))
        text = self.responses[self._next % len(self.responses)]
        self._next += 1
        return text

    def generate(self, prompts=None, prompt_ids=None, params=None, generator=None, *, seeds=None, mm_inputs=None,
                 messages=None):
        import torch

        from rlcore import rollout

        params = params or rollout.SamplingParams()
        ids = rollout.encode_prompts(self.tokenizer, prompts, prompt_ids, messages=messages)
        rollout._record("generate", ids, params, mm_inputs)
        out = []
        for i, p in enumerate(ids):
            prompt_text = prompts[i] if prompts is not None else self.tokenizer.decode(p)
            row = []
            for _ in range(params.n):
                text, reason = self._text_for(prompt_text), "eos"
                hits = [text.find(s) for s in params.stop if s in text]
                if hits:
                    text, reason = text[: min(hits)], "stop"
                tids = self.tokenizer(text, add_special_tokens=False).input_ids
                if len(tids) > params.max_new_tokens:
                    tids, reason = tids[: params.max_new_tokens], "length"
                    text = self.tokenizer.decode(tids, skip_special_tokens=True)
                row.append(rollout.Completion(i, tids, text, torch.zeros(len(tids)), torch.zeros(len(tids)), reason))
            out.append(row)
        return out

# rlcore-infra helpers re-exported here: fuzz harness (rlcore.fuzz), launch/kill helpers (rlcore.training)
from .fuzz import ADVERSARIAL_STRINGS, FuzzReport, fuzz_total  # noqa: E402, F401
from .training import accelerate_launch, run_and_kill  # noqa: E402, F401
