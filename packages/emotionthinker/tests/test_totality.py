"""Every reward, grader and parser is total: any string -> a score (or None), never raises, linear time."""

import re
import time

import pytest
from emotionthinker.config import PTRConfig
from emotionthinker.judge import prosody_rubric_judge
from emotionthinker.policy import normalize_label, parse_answer
from emotionthinker.rewards import (
    accuracy_reward,
    format_reward,
    get_ptr_reasoning_reward,
    is_think_answer_format,
)
from emotionthinker.similarity import SimilarityReward
from rlcore.testing import fuzz_total

REC = {"pitch_level": "high", "energy_level": "low", "speed_level": "fast", "intonation": "rising",
       "transcription": "I cannot believe this happened"}


def _is_score(r):
    return isinstance(r, list) and len(r) == 1 and (r[0] is None or 0.0 <= r[0] <= 1.0)


PTR = get_ptr_reasoning_reward("prosody-rubric", PTRConfig(schedule="constant", gate_uniform_groups=False),
                               group_size=2)
SIM = SimilarityReward()

FUNCS = {
    "format_reward": (lambda s: format_reward(None, [s]), _is_score),
    "accuracy_reward": (lambda s: accuracy_reward(None, [s], emotion=["angry"]), _is_score),
    "similarity_reward": (lambda s: SIM(None, [s], emotion=["angry"]), _is_score),
    "parse_answer": (parse_answer, lambda r: r is None or isinstance(r, str)),
    "normalize_label": (normalize_label, lambda r: r is None or isinstance(r, str)),
    "prosody_rubric_judge": (lambda s: prosody_rubric_judge(s, parse_answer(s), REC), lambda r: 0.0 <= r <= 1.0),
    "ptr_reasoning_reward": (lambda s: PTR(None, [s, "<answer>sad</answer>"], emotion=["sad", "sad"],
                                           **{k: [v, v] for k, v in REC.items()}),
                             lambda r: len(r) == 2 and all(0.0 <= x <= 1.0 for x in r)),
}


@pytest.mark.parametrize("name", sorted(FUNCS))
def test_fuzz_total(name):
    fn, check = FUNCS[name]
    fuzz_total(fn, n_cases=1000, max_seconds=1.0, check=check)


_R1 = re.compile(r"^\s*<think>.*?</think>\s*<answer>.*?</answer>\s*$", re.DOTALL)


def test_linear_format_check_accepts_exactly_the_r1_regex_language():
    import random

    toks = ["<think>", "</think>", "<answer>", "</answer>", " ", "\n", "a", "<", "/", "\u2003"]
    rng = random.Random(0)
    for _ in range(3000):
        s = "".join(rng.choice(toks) for _ in range(rng.randint(0, 10)))
        assert is_think_answer_format(s) == bool(_R1.match(s)), repr(s)


def test_format_reward_is_linear_on_the_inputs_that_were_quadratic():
    # the old regex: 52 KB 0.73 s, 104 KB 3.2 s, 1 MB > 30 s (issue 15)
    for s in ("<think>" + "</think> " * 130_000, "<think>" + "</think>" + " " * 1_000_000 + "<answer",
              "<think>a</think><answer>" + "x" * 1_000_000):
        t = time.perf_counter()
        assert format_reward(None, [s]) == [0.0]
        assert time.perf_counter() - t < 0.5
