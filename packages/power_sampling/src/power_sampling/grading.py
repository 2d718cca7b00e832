r"""Answer extraction and grading for the paper's benchmarks (Sec. 5.1): MATH500, HumanEval, GPQA, arithmetic.

MATH500: the last ``\boxed{}`` (brace matched) is compared with the reference by ``math-verify``; when
math-verify cannot parse either side we fall back to a sympy equality of the normalised strings, then to exact
normalised-string match. Unlike the reference's ``eval_math.py``, a grader error is not silently scored 0: it is
counted in ``GradeResult.error`` and reported. HumanEval: the program runs in a fresh ``python -I`` subprocess with
a timeout (never in-process), no network is attempted by the harness, and the exit status decides.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import tempfile

from rlcore.rewards import extract_boxed, extract_tag

__all__ = [
    "GradeResult",
    "normalize_math",
    "grade_math",
    "extract_choice",
    "grade_choice",
    "extract_number",
    "grade_number",
    "extract_code",
    "run_humaneval",
    "compute_pass_at_k",
]


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
    s = re.sub(r"\\text\{\s*([^}]*)\}", r"\1", s)
    for a, b in (("\\left", ""), ("\\right", ""), ("\\!", ""), ("\\,", ""), ("dfrac", "frac"), ("tfrac", "frac"),
                 ("^{\\circ}", ""), ("^\\circ", ""), ("\\%", ""), (" ", "")):
        s = s.replace(a, b)
    s = s.rstrip(".")
    if re.fullmatch(r"-?\d+\.0+", s):
        s = s.split(".")[0]
    return s


def _sympy_equal(a: str, b: str) -> bool:
    from sympy.parsing.sympy_parser import parse_expr

    def conv(x: str):
        x = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"((\1)/(\2))", x).replace("^", "**").replace("\\cdot", "*")
        return parse_expr(x, evaluate=True)

    return bool(abs(conv(a) - conv(b)) < 1e-9) if a and b else False


def grade_math(completion: str, answer: str) -> GradeResult:
    r"""Grade a MATH-style completion: last ``\boxed{}`` vs ``answer`` (math-verify, then sympy, then string).

    Example:
        >>> grade_math("so \\boxed{\\frac{1}{2}}", "0.5").correct
        True
        >>> grade_math("no box here", "3").prediction is None
        True
    """
    pred = extract_boxed(completion)
    if pred is None:
        return GradeResult(False, None)
    from math_verify import parse, verify

    try:
        gold_p, pred_p = parse(f"${answer}$"), parse(f"${pred}$")
        if gold_p and pred_p:
            return GradeResult(bool(verify(gold_p, pred_p)), pred)
    except Exception as e:  # noqa: BLE001 - math-verify raises many types; fall back and record it
        err = f"math-verify: {type(e).__name__}: {e}"
    else:
        err = None
    a, b = normalize_math(pred), normalize_math(answer)
    if a == b:
        return GradeResult(True, pred, err)
    try:
        return GradeResult(_sympy_equal(a, b), pred, err)
    except (SyntaxError, TypeError, ValueError, AttributeError, ZeroDivisionError, NameError) as e:
        return GradeResult(False, pred, err or f"sympy: {type(e).__name__}")


def extract_choice(completion: str) -> str | None:
    r"""The multiple-choice letter (A-D) in the last ``\boxed{}``, else after 'answer is'.

    Example:
        >>> extract_choice("... \\boxed{(C)}")
        'C'
    """
    boxed = extract_boxed(completion)
    text = boxed if boxed is not None else completion
    m = re.search(r"\b([A-D])\b", text) if boxed is not None else re.search(r"answer is\s*\(?([A-D])\b", text)
    return m.group(1) if m else None


def grade_choice(completion: str, answer: str) -> GradeResult:
    """GPQA: the boxed letter equals ``answer`` (a letter)."""
    pred = extract_choice(completion)
    return GradeResult(pred is not None and pred == answer.strip().upper(), pred)


_NUM = r"-?\d+(?:\.\d+)?"


def extract_number(completion: str) -> str | None:
    r"""An arithmetic answer: ``\boxed{}``, else ``<answer>``, else 'answer is N', else the last number.

    Example:
        >>> extract_number("<think>3+4=7</think><answer>7</answer>")
        '7'
        >>> extract_number("so it is 12 and then 14")
        '14'
    """
    for cand in (extract_boxed(completion), extract_tag(completion, "answer")):
        if cand is not None:
            m = re.search(_NUM, cand.replace(",", ""))
            return m.group(0) if m else cand.strip()
    m = re.search(r"answer is\s*(" + _NUM + ")", completion)
    if m:
        return m.group(1)
    nums = re.findall(_NUM, completion.replace(",", ""))
    return nums[-1] if nums else None


def grade_number(completion: str, answer: str) -> GradeResult:
    """Numeric equality (|a - b| < 1e-6) of the extracted number and ``answer``."""
    pred = extract_number(completion)
    if pred is None:
        return GradeResult(False, None)
    try:
        return GradeResult(abs(float(pred) - float(answer)) < 1e-6, pred)
    except ValueError:
        return GradeResult(pred.strip() == str(answer).strip(), pred)


def extract_code(prompt: str, completion: str) -> str:
    """The program to test: a fenced python block if the completion has one, else prompt + completion.

    Base models continue the function body, as in the paper's raw-prompt HumanEval setting.
    """
    blocks = re.findall(r"```(?:python|py)?\n(.*?)```", completion, flags=re.S)
    if blocks:
        code = max(blocks, key=len)
        return code if "def " in code else prompt + code
    return prompt + completion


def run_humaneval(program: str, test: str, entry_point: str, timeout: float = 3.0) -> GradeResult:
    """Run ``program`` + HumanEval ``test`` + ``check(entry_point)`` in an isolated subprocess.

    ``python -I`` (no site, no env), an empty temp working directory, no stdin, killed after ``timeout`` seconds.
    Pass = exit status 0. This limits accidents, not malice: run untrusted code in a sandbox/container.
    """
    src = f"{program}\n\n{test}\n\ncheck({entry_point})\n"
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "prog.py")
        with open(path, "w", encoding="utf-8") as f:
            f.write(src)
        try:
            r = subprocess.run([sys.executable, "-I", path], cwd=d, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=timeout, env={"PATH": os.environ.get("PATH", "")})
        except subprocess.TimeoutExpired:
            return GradeResult(False, program, detail=f"timeout after {timeout}s")
    if r.returncode == 0:
        return GradeResult(True, program)
    tail = r.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
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
