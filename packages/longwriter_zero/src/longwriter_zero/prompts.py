r"""The policy's raw-completion prompts (Think / No-think, English / Chinese) and answer extraction.

LongWriter-Zero trains a *base* model, so the policy sees a plain completion prompt, not a chat template: a fixed
preamble, then ``<|user|>: {question} <|assistant|>:`` (Chinese: ``<|用户|>: {question} <|助手|>:``). The Chinese
template is chosen whenever the question holds any CJK character (``[\u4e00-\u9fff]``). Generation stops at
``<|user|>``, ``<|endoftext|>`` or ``</answer>``, so the closing ``</answer>`` is usually *missing* from the output
and :func:`extract_answer` accepts that.

The preamble wording below follows the spec's description of the model card's template (think deeply, plan,
reflect on ambiguity, explore approaches, weigh coherence/clarity/style/tone/audience/purpose, review and refine,
then ``<think>``/``<answer>`` with a one-line demo). Pass ``template=`` to :func:`build_prompt` to use any other
wording (it must contain ``{question}``).
"""

from __future__ import annotations

import re

__all__ = [
    "CJK_RE",
    "STOP_STRINGS",
    "THINK_TEMPLATE_EN",
    "THINK_TEMPLATE_ZH",
    "NOTHINK_TEMPLATE_EN",
    "NOTHINK_TEMPLATE_ZH",
    "has_cjk",
    "build_prompt",
    "extract_answer",
]

CJK_RE = re.compile(r"[\u4e00-\u9fff]")
STOP_STRINGS = ("<|user|>", "<|endoftext|>", "</answer>")
_TRAILING_MARKERS = ("<|user|>", "<|用户|>", "<|endoftext|>", "<|assistant|>", "<|助手|>")

THINK_TEMPLATE_EN = (
    "A conversation between the user and the assistant. The user gives a writing task or a general task, and the "
    "assistant completes it. Before writing, the assistant thinks deeply: it plans the work comprehensively, "
    "reflects on any ambiguity in the request, explores several possible approaches, and considers coherence, "
    "clarity, style, tone, audience and purpose. It then reviews and refines the work. The thinking goes inside "
    "<think> </think> and the final work inside <answer> </answer>, for example: <think>A comprehensive strategy "
    "… brainstorming, outlining, style selection, audience adaptation, self-reflection, quality assurance, "
    "etc..</think> <answer>The final written work after thorough optimization and refinement.</answer>  "
    "<|user|>: {question} <|assistant|>:"
)
THINK_TEMPLATE_ZH = (
    "这是用户与助手之间的对话。用户给出写作任务或一般任务，由助手完成。动笔之前，助手会深入思考：全面规划作品，"
    "反思请求中的模糊之处，探索多种可能的写法，并兼顾连贯性、清晰度、风格、语气、读者对象与写作目的；随后审阅并"
    "打磨作品。思考过程写在 <think> </think> 中，最终作品写在 <answer> </answer> 中，例如：<think>全面的写作策略……"
    "头脑风暴、列提纲、选择风格、适配读者、自我反思、质量把关等。</think> <answer>经过充分优化与打磨的最终作品。"
    "</answer>  <|用户|>: {question} <|助手|>:"
)
NOTHINK_TEMPLATE_EN = (
    "A conversation between the user and the assistant. The user gives a writing task or a general task, and the "
    "assistant completes it, directly giving the final written work enclosed in <answer> </answer>, for example: "
    "<answer>Final written work.</answer>  <|user|>: {question} <|assistant|>:"
)
NOTHINK_TEMPLATE_ZH = (
    "这是用户与助手之间的对话。用户给出写作任务或一般任务，由助手完成，并直接给出最终作品，写在 <answer> </answer> "
    "中，例如：<answer>最终作品。</answer>  <|用户|>: {question} <|助手|>:"
)


def has_cjk(text: str) -> bool:
    """Whether ``text`` holds any CJK unified ideograph (the paper's language switch).

    Example:
        >>> has_cjk("Write 500 words"), has_cjk("写一篇文章")
        (False, True)
    """
    return CJK_RE.search(text) is not None


def build_prompt(question: str, think: bool = True, template: str | None = None) -> str:
    """The raw completion prompt for ``question``: Think or No-think, Chinese if the question has any CJK char.

    Args:
        question: the user's request.
        think: the Think template (paper default) or the No-think ablation ("Base-nothink").
        template: a custom template with a ``{question}`` placeholder (overrides ``think`` and the language).

    Raises:
        ValueError: an empty question or a template without ``{question}``.

    Example:
        >>> build_prompt("Write a poem.").endswith("<|user|>: Write a poem. <|assistant|>:")
        True
        >>> build_prompt("写一首诗").endswith("<|用户|>: 写一首诗 <|助手|>:")
        True
    """
    if not isinstance(question, str) or not question.strip():
        raise ValueError("question must be a non-empty string")
    if template is None:
        zh = has_cjk(question)
        if think:
            template = THINK_TEMPLATE_ZH if zh else THINK_TEMPLATE_EN
        else:
            template = NOTHINK_TEMPLATE_ZH if zh else NOTHINK_TEMPLATE_EN
    elif "{question}" not in template:
        raise ValueError("template must contain the placeholder {question}")
    return template.replace("{question}", question)


def _strip_trailing_markers(text: str) -> str:
    for m in _TRAILING_MARKERS:  # a stop string that the sampler left in the text
        idx = text.find(m)
        if idx >= 0:
            text = text[:idx]
    return text.strip()


def extract_answer(text: str, untagged: str = "none") -> str | None:
    """The user-facing answer of a completion: the content of ``<answer>…``, closed or not.

    Without an ``<answer>`` tag the text after ``</think>`` is the answer (a model that closed its thinking but
    skipped the tag). With neither, ``untagged`` decides: ``"none"`` returns ``None`` (no answer; the paper's
    rule), ``"whole"`` returns the whole completion (for models that never learned the tags, e.g. a tiny demo
    model). Stop markers left in the text (``<|user|>``, ``<|endoftext|>``) end the answer.

    Example:
        >>> extract_answer("<think>plan</think><answer>Dear Sir,")
        'Dear Sir,'
        >>> extract_answer("<think>plan</think> Dear Sir")
        'Dear Sir'
        >>> extract_answer("just text") is None, extract_answer("just text", untagged="whole")
        (True, 'just text')
    """
    if untagged not in ("none", "whole"):
        raise ValueError(f"untagged must be 'none' or 'whole', got {untagged!r}")
    start = text.find("<answer>")
    if start >= 0:
        body = text[start + len("<answer>"):]
        end = body.find("</answer>")
        return _strip_trailing_markers(body if end < 0 else body[:end])
    if "</think>" in text:
        return _strip_trailing_markers(text.rsplit("</think>", 1)[1])
    if untagged == "whole":
        return _strip_trailing_markers(text)
    return None
