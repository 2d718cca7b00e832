"""Security: no grader runs model/dataset text in-process, and HumanEval code stays inside its sandbox."""

import os

import pytest
from power_sampling.grading import extract_code, grade_choice, grade_math, grade_number, run_humaneval
from power_sampling.sandbox import SandboxLimits, network_isolation_prefix, run_python_sandboxed


def _payloads(marker):
    m = str(marker)
    return [
        f"__import__('os').system('touch {m}')",
        f"\n__import__('os').system('touch {m}')",
        f"__import__('pathlib').Path('{m}').touch()",
        f"(lambda: open('{m}', 'w').write('x'))()",
        f"exec(\"open('{m}','w')\")",
        f"eval(compile(\"__import__('os').system('touch {m}')\", 's', 'exec'))",
    ]


def test_boxed_and_gpqa_payloads_never_run(tmp_path):
    marker = tmp_path / "pwned"
    for p in _payloads(marker):
        for completion in (f"so \\boxed{{{p}}}", f"\\boxed{{{p}\n}}", f"answer is \\boxed{{1 + {p}}}"):
            for answer in ("1", p, "\\frac{1}{2}"):
                g = grade_math(completion, answer)
                assert isinstance(g.correct, bool) and (g.prediction is not None)
            assert not grade_choice(completion, "A").correct
            grade_number(completion, "3")
    assert not marker.exists()


def test_grade_math_tokenizer_errors_do_not_escape():
    # strings that made sympy's tokenizer raise TokenError / SyntaxError in the old fallback
    for bad in ("\\boxed{(1+}", "\\boxed{'unclosed}", "\\boxed{1\n+\n(}", "\\boxed{\"\"\"}", "\\boxed{\\frac{1}{}"):
        g = grade_math(bad, "1")
        assert g.correct is False


PROMPT = 'def add(a, b):\n    """Add two numbers."""\n'
TEST = "def check(f):\n    assert f(2, 3) == 5\n"


@pytest.mark.parametrize("body", [
    "    open({m!r}, 'w').write('x')\n    return a + b\n",
    "    import os\n    os.system('touch ' + {m!r})\n    return a + b\n",
    "    import subprocess\n    subprocess.run(['touch', {m!r}])\n    return a + b\n",
    "    import pathlib\n    pathlib.Path({m!r}).touch()\n    return a + b\n",
    "    import os\n    os.rename(__file__, {m!r})\n    return a + b\n",
    "    import os\n    fd = os.open({m!r}, os.O_CREAT | os.O_WRONLY)\n    return a + b\n",
    "    import shutil\n    shutil.copyfile(__file__, {m!r})\n    return a + b\n",
])
def test_humaneval_payload_never_touches_marker(tmp_path, body):
    marker = str(tmp_path / "pwned")
    g = run_humaneval(extract_code(PROMPT, body.format(m=marker)), TEST, "add")
    assert not os.path.exists(marker)
    assert not g.correct and "sandbox" in g.detail


def test_sandbox_limits_network_and_workdir():
    assert run_python_sandboxed("print(6 * 7)").stdout == "42\n"
    r = run_python_sandboxed("open('scratch.txt', 'w').write('ok'); print(open('scratch.txt').read())")
    assert r.returncode == 0 and r.stdout == "ok\n"  # the temp working directory is writable
    assert run_python_sandboxed("import socket").returncode != 0
    assert run_python_sandboxed("import os; os.fork()").returncode != 0
    r = run_python_sandboxed("x = bytearray(600 * 2**20)", limits=SandboxLimits(memory_bytes=256 * 2**20))
    assert r.returncode != 0 and "MemoryError" in r.stderr
    r = run_python_sandboxed("with open('big', 'wb') as f: f.write(b'0' * 4096)", limits=SandboxLimits(file_size_bytes=1024))
    assert r.returncode != 0 and "File too large" in r.stderr  # EFBIG past the file-size limit
    r = run_python_sandboxed("while True: pass", timeout=0.5)
    assert r.timed_out and r.returncode is None
    if os.geteuid() == 0:  # root here: the run is in its own network namespace
        assert network_isolation_prefix()[-1] == "-n"


def test_humaneval_stop_sequences_applied_first():
    # trailing prose after a top-level print was a SyntaxError before; the stop sequence removes it
    completion = "    return a + b\n\nprint(add(1, 2))\nThis function adds two numbers.\n"
    assert run_humaneval(extract_code(PROMPT, completion), TEST, "add").correct
