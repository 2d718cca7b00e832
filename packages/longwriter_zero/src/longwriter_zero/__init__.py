"""LongWriter-Zero (Wu et al., ICLR 2026): RL for ultra-long writing with length, writing and format rewards."""

from .format_reward import check_format, compute_repetition_rate, get_format_reward
from .length_predictor import LengthRangePredictor, parse_range_json, rule_based_range
from .length_reward import compute_length_reward, count_words, get_length_reward
from .prompts import STOP_STRINGS, build_prompt, extract_answer, has_cjk
from .writing_reward import get_writing_reward

__version__ = "0.1.0"


def __getattr__(name: str):
    """Lazy export of the torch-backed advantage function, so importing the package (and ``--help``) skips torch."""
    if name == "compute_averaged_advantages":
        from .advantage import compute_averaged_advantages

        return compute_averaged_advantages
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "STOP_STRINGS",
    "LengthRangePredictor",
    "build_prompt",
    "check_format",
    "compute_averaged_advantages",
    "compute_length_reward",
    "compute_repetition_rate",
    "count_words",
    "extract_answer",
    "get_format_reward",
    "get_length_reward",
    "get_writing_reward",
    "has_cjk",
    "parse_range_json",
    "rule_based_range",
]
