"""LoongRL (ICLR 2026): KeyChain long-context data synthesis and GRPO with a two-way substring reward."""

from .config import EvalConfig, FilterConfig, NiahConfig, SynthConfig, TrainConfig
from .context_filling import TokenCounter, fill_context
from .data import DocPool, QAItem, load_qa, make_synthetic_qa
from .keychain import KeyChain, compute_num_chains, follow_chain, remove_pairs
from .prompts import keychain_prompt, multihop_prompt
from .reward import compute_f1, compute_sub_em, extract_final_answer, get_sub_em_reward
from .synthesis import synthesize

__version__ = "0.1.0"
__all__ = [
    "QAItem", "DocPool", "load_qa", "make_synthetic_qa", "TokenCounter", "fill_context", "KeyChain",
    "compute_num_chains", "follow_chain", "remove_pairs", "synthesize", "keychain_prompt", "multihop_prompt",
    "compute_sub_em", "compute_f1", "extract_final_answer", "get_sub_em_reward", "SynthConfig", "FilterConfig",
    "TrainConfig", "EvalConfig", "NiahConfig",
]
