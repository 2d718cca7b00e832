"""LoongRL (ICLR 2026): KeyChain long-context data synthesis and GRPO with a two-way substring reward."""

from .config import EvalConfig, FilterConfig, NiahConfig, SynthConfig, SynthMixConfig, TrainConfig
from .context_filling import TokenCounter, fill_context
from .data import DocPool, QAItem, load_qa, make_synthetic_qa
from .generation import ChatSampler, make_chat_sampler
from .keychain import KeyChain, compute_num_chains, follow_chain, remove_pairs
from .memory_agent import MemoryAgent
from .prompts import keychain_prompt, multihop_prompt
from .reward import (
                     compute_exact_match,
                     compute_f1,
                     compute_math_match,
                     compute_sub_em,
                     extract_final_answer,
                     get_loongrl_reward,
                     get_sub_em_reward,
                     reward_kind,
)
from .synthesis import synthesize

__version__ = "0.1.0"
__all__ = [
    "QAItem", "DocPool", "load_qa", "make_synthetic_qa", "TokenCounter", "fill_context", "KeyChain",
    "compute_num_chains", "follow_chain", "remove_pairs", "synthesize", "keychain_prompt", "multihop_prompt",
    "compute_sub_em", "compute_f1", "extract_final_answer", "get_sub_em_reward", "SynthConfig", "FilterConfig",
    "TrainConfig", "EvalConfig", "NiahConfig", "SynthMixConfig", "ChatSampler", "make_chat_sampler", "MemoryAgent",
    "compute_exact_match", "compute_math_match", "get_loongrl_reward", "reward_kind",
]
