"""Loader for checkpoints of the official Q-RAG code (``griver/Q-RAG``, ``train_q_rag.py``).

Layout of an official run directory (``logger.log_dir``):

- ``config.yaml``: the Hydra config saved with ``OmegaConf.save(resolve=False)``. Keys read here:
  ``algo.model.model_name`` (base encoder, e.g. ``facebook/contriever``), ``envs.positions_processor``
  (``relative``/``absolute``/``none``; ``random`` is refused), ``envs.positions_processor_dict.relative.step_size``
  (20), ``max_action_length`` (chunk token limit, special tokens included), ``max_action_length_in_memory``
  (state piece token limit), ``envs.env.sort_by_index``. ``${a.b.c}`` references are followed.
- ``model_best.pt`` / ``model_last.pt``: one ``torch.save`` dict with ``critic``, ``policy``, ``random_policy``,
  ``v_net_target``, ``action_embed_target``, ``critic_optim``, ``scheduler``, ``alpha``. Only ``critic`` is needed
  for retrieval (the policy's state encoder is a hard copy of the critic's):

  - ``critic["state_embed.model.<encoder key>"]``: the state encoder (``BertPredictor.model``, or
    ``SimpleEmbedder.model`` for the Qwen3-Embedding variant);
  - ``critic["action_embed.model.model.<encoder key>"]``: the action encoder (wrapped once more by the
    position embedder ``EmbedderWithRelativeEncoding`` / ``...AbsoluteEncoding`` / ``EmbedderNone``);
  - ``critic["action_embed.rotary_emb.freqs"]`` (RoPE frequencies of rotary dim d/2; checked against ours);
  - ``state_embed.head.*`` / ``cls_token`` / ``sep_token``: present for ``BertPredictor`` (mean pooling / 10;
    the head is unused), absent for ``SimpleEmbedder`` (last-token pooling + L2 norm).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

__all__ = ["is_official_run", "read_official_config", "official_settings", "load_official_checkpoint",
           "CHECKPOINT_FILES"]

CHECKPOINT_FILES = {"best": "model_best.pt", "last": "model_last.pt"}
STATE_PREFIX = "state_embed.model."
ACTION_PREFIX = "action_embed.model.model."
FREQS_KEY = "action_embed.rotary_emb.freqs"
_REF = re.compile(r"^\$\{([A-Za-z0-9_.]+)\}$")


def is_official_run(path: str | Path) -> bool:
    """True for a directory holding the official ``config.yaml`` and a ``model_best.pt``/``model_last.pt``."""
    p = Path(path)
    return (p / "config.yaml").is_file() and any((p / f).is_file() for f in CHECKPOINT_FILES.values())


def _get(cfg: dict, dotted: str, default: Any = KeyError, _depth: int = 0) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is KeyError:
                raise KeyError(dotted)
            return default
        node = node[part]
    if isinstance(node, str) and (m := _REF.match(node.strip())):
        if _depth > 20:
            raise ValueError(f"config.yaml: reference cycle at {dotted}")
        return _get(cfg, m.group(1), default, _depth + 1)
    return node


def read_official_config(path: str | Path) -> dict:
    """``config.yaml`` of an official run as a dict (errors name the file)."""
    import yaml

    f = Path(path) / "config.yaml"
    try:
        cfg = yaml.safe_load(f.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ValueError(f"{f}: not valid YAML ({e})") from e
    if not isinstance(cfg, dict):
        raise ValueError(f"{f}: must hold a mapping")
    return cfg


def official_settings(cfg: dict, critic: dict[str, torch.Tensor] | None = None, source: str = "config.yaml") -> dict:
    """Q-function settings of an official run: position type, step size, token limits, sort order, pooling."""
    try:
        position = str(_get(cfg, "envs.positions_processor"))
        max_action = int(_get(cfg, "max_action_length"))
        max_state = int(_get(cfg, "max_action_length_in_memory"))
    except KeyError as e:
        raise ValueError(f"{source}: missing key {e.args[0]}") from None
    if position not in ("relative", "absolute", "none"):
        raise ValueError(f"{source}: positions_processor {position!r} is not supported (relative, absolute, none)")
    step = _get(cfg, "envs.positions_processor_dict.relative.step_size", 10)  # class default 10; configs use 20
    out = dict(position=position, step_size=int(step), max_action_tokens=max_action, max_state_tokens=max_state,
               sort_by_index=bool(_get(cfg, "envs.env.sort_by_index", True)), rope_theta=10000.0)
    if critic is not None:
        out["pooling"] = "mean" if "state_embed.head.weight" in critic else "last"
    return out


def _split(critic: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in critic.items() if k.startswith(prefix)}


def _load_encoder(base: str, weights: dict[str, torch.Tensor], what: str, source: str):
    from transformers import AutoModel

    if not weights:
        raise ValueError(f"{source}: no {what} weights (keys starting with "
                         f"{STATE_PREFIX if what == 'state encoder' else ACTION_PREFIX!r})")
    enc = AutoModel.from_pretrained(base)
    missing, unexpected = enc.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.startswith("pooler.")]  # the pooler is unused (mean/last pooling)
    if missing or unexpected:
        raise ValueError(f"{source}: {what} weights do not fit {base}: missing {missing[:5]}, unexpected "
                         f"{list(unexpected)[:5]}")
    return enc.eval()


def load_official_checkpoint(path: str | Path, base_model: str | None = None, which: str = "best", **requested):
    """A :class:`~q_rag.q_function.QFunction` from an official run directory (see the module docstring).

    Args:
        path: the run directory (``config.yaml`` + ``model_best.pt``/``model_last.pt``).
        base_model: local dir (or hub name) of the base encoder: architecture config and tokenizer. Default:
            ``algo.model.model_name`` from ``config.yaml``.
        which: ``best`` or ``last``.
        **requested: settings given explicitly (None = from the checkpoint); a contradiction is an error.

    Raises:
        ValueError: missing files/keys, unsupported position type, weights that do not fit the base encoder,
            RoPE frequencies that differ from theta 10000, or a requested setting contradicting the checkpoint.
    """
    from transformers import AutoTokenizer

    from .q_function import QFunction, resolve_settings
    from .rope import rope_frequencies

    p = Path(path)
    if which not in CHECKPOINT_FILES:
        raise ValueError(f"which must be one of {sorted(CHECKPOINT_FILES)}, got {which!r}")
    ckpt_file = p / CHECKPOINT_FILES[which]
    if not ckpt_file.is_file():
        raise FileNotFoundError(f"no official checkpoint at {ckpt_file}")
    cfg = read_official_config(p)
    ckpt = torch.load(ckpt_file, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or "critic" not in ckpt:
        raise ValueError(f"{ckpt_file}: expected a dict with a 'critic' state dict")
    critic = ckpt["critic"]
    if any(k.endswith("output_token_ids") for k in critic):
        raise ValueError(f"{ckpt_file}: n_output > 1 predictors (extra output tokens) are not supported")
    saved = official_settings(cfg, critic, str(p / "config.yaml"))
    settings = resolve_settings(saved, requested, f"the official checkpoint ({p / 'config.yaml'})")
    base = base_model or str(_get(cfg, "algo.model.model_name", ""))
    if not base:
        raise ValueError(f"{p / 'config.yaml'}: no algo.model.model_name; pass the base encoder (--base-model)")
    state = _load_encoder(base, _split(critic, STATE_PREFIX), "state encoder", str(ckpt_file))
    action = _load_encoder(base, _split(critic, ACTION_PREFIX), "action encoder", str(ckpt_file))
    if FREQS_KEY in critic:
        ours = rope_frequencies(state.config.hidden_size // 2, settings["rope_theta"]).float()
        theirs = critic[FREQS_KEY].float().flatten()
        if theirs.shape != ours.shape or not torch.allclose(theirs, ours, rtol=1e-5, atol=1e-8):
            raise ValueError(f"{ckpt_file}: RoPE frequencies differ from theta={settings['rope_theta']:g}")
    tok = AutoTokenizer.from_pretrained(base)
    return QFunction(state, action, tok, **settings)
