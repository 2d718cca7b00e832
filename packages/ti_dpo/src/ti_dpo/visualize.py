"""Token-weight views: one prompt+response through the attribution, shown in the terminal, HTML or a PNG heatmap."""

from __future__ import annotations

import html as _html
from typing import Any

import torch

from .importance import (
    compute_confidence_importance,
    compute_gradient_attribution,
    compute_random_importance,
    compute_token_weights,
)

__all__ = ["token_importance", "render_terminal", "render_html", "render_png"]


def token_importance(model: Any, tokenizer: Any, prompt: str, response: str, ti_lambda: float = 0.7,
                     prior_sigma_div: float = 4.0, weight_normalization: str = "mean_one",
                     importance_span: str = "response", importance: str = "gradient", prior: str = "gaussian",
                     max_length: int | None = None, seed: int = 0) -> dict[str, Any]:
    """The TI-DPO weights the trainer gives ``response`` as the chosen answer to ``prompt``.

    Tokenised exactly as training does (TRL's DPO rule, EOS appended to a plain-text response, truncated to
    ``max_length``), then the same attribution / confidence and :func:`compute_token_weights` as the trainer.
    (``importance="random"`` draws fresh noise from ``seed``; training draws per batch.)

    Returns:
        ``tokens`` (decoded strings), ``importance``, ``weights`` (0 outside the span) and ``response_mask``.
    """
    from .evaluation import tokenize_pair

    p_ids, c_ids, _ = tokenize_pair(tokenizer, {"prompt": prompt, "chosen": response, "rejected": response})
    ids = (p_ids + c_ids)[:max_length] if max_length else p_ids + c_ids
    if len(ids) <= len(p_ids):
        raise ValueError("the response adds no token to the prompt (within max_length)")
    device = next(model.parameters()).device
    input_ids = torch.tensor([ids], device=device)  # (1, T)
    attention = torch.ones_like(input_ids)
    response_mask = torch.zeros_like(input_ids)
    response_mask[0, len(p_ids):] = 1
    if importance == "gradient":
        imp = compute_gradient_attribution(model, input_ids, attention)  # (1, T)
    elif importance == "confidence":
        with torch.no_grad():
            logits = model(input_ids=input_ids, attention_mask=attention).logits[:, :-1].float()
        logps = logits.log_softmax(-1).gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)  # (1, T-1)
        imp = compute_confidence_importance(logps, response_mask[:, 1:])
    else:
        imp = compute_random_importance(attention, torch.Generator().manual_seed(seed))
    span = response_mask if importance_span == "response" else attention
    w, _ = compute_token_weights(imp, span, ti_lambda, prior_sigma_div, weight_normalization, "importance", prior)
    return {
        "tokens": [tokenizer.decode([i]) for i in ids],
        "importance": imp[0].tolist(),
        "weights": w[0].tolist(),
        "response_mask": response_mask[0].tolist(),
    }


def _intensity(weights: list[float], mask: list[int]) -> list[float]:
    inside = [w for w, m in zip(weights, mask, strict=True) if m]
    top = max(inside) if inside else 1.0
    return [w / top if m and top > 0 else 0.0 for w, m in zip(weights, mask, strict=True)]


def render_terminal(view: dict[str, Any]) -> Any:
    """A ``rich.text.Text`` with each response token on a red background whose strength is its weight."""
    from rich.text import Text

    text = Text()
    for tok, a, m in zip(view["tokens"], _intensity(view["weights"], view["response_mask"]), view["response_mask"],
                         strict=True):
        if not m:
            text.append(tok, style="dim")
            continue
        level = int(255 - 200 * a)
        text.append(tok, style=f"black on rgb(255,{level},{level})")
    return text


def render_html(view: dict[str, Any], title: str = "TI-DPO token weights") -> str:
    """A standalone HTML page: response tokens shaded by weight, the value in each token's tooltip."""
    spans = []
    for tok, a, w, m in zip(view["tokens"], _intensity(view["weights"], view["response_mask"]), view["weights"],
                            view["response_mask"], strict=True):
        t = _html.escape(tok).replace("\n", "&#8629;<br>")
        if m:
            spans.append(f'<span title="w={w:.3f}" style="background: rgba(220,40,40,{a:.3f})">{t}</span>')
        else:
            spans.append(f'<span style="color:#888">{t}</span>')
    body = "".join(spans)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{_html.escape(title)}</title></head>"
            f"<body style='font-family: monospace; white-space: pre-wrap'><h3>{_html.escape(title)}</h3>"
            f"<p>{body}</p></body></html>\n")


def render_png(view: dict[str, Any], path: str, title: str = "TI-DPO token weights") -> None:
    """A one-row heatmap of the response tokens' weights, saved to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = [i for i, m in enumerate(view["response_mask"]) if m]
    weights = [[view["weights"][i] for i in idx]]
    labels = [repr(view["tokens"][i])[1:-1] for i in idx]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(idx)), 1.8))
    im = ax.imshow(weights, cmap="Reds", aspect="auto")
    ax.set_xticks(range(len(idx)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
