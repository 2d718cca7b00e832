"""Typed configs: sampler knobs (paper Sec. 5.1 defaults) and the ``generate`` / ``eval`` commands built on them."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from rlcore.backends import BACKEND_HELP, BACKENDS
from rlcore.cli import option

__all__ = ["SamplerConfig", "GenerateConfig", "EvalConfig"]


@dataclasses.dataclass
class SamplerConfig:
    """Power sampling settings; defaults are the paper's MATH500 / HumanEval / GPQA ones (Sec. 5.1)."""

    alpha: float = option(4.0, "power exponent of the target p^alpha, >= 1; 'inf' = greedy max-swap (Sec. 5.1)")
    block_size: int = option(192, "B, tokens per block: 3072/16 (Sec. 5.1); a shorter last block if B does not divide T")
    mcmc_steps: int = option(10, "N_MCMC, MH steps per block (Sec. 5.1, Fig. 6); 0 = low-temperature sampling")
    max_new_tokens: int = option(3072, "T_max, new tokens per completion (Sec. 5.1)")
    proposal_temperature: float | None = option(None, "proposal temperature; default 1/alpha (Sec. 4.2)")
    top_k: int = option(50, "proposal top-k, 0 = off; 50 = the official code (HF generate's default)")
    top_p: float = option(1.0, "proposal top-p, 1.0 = off")
    seed: int = option(0, "run seed: chain j of a prompt draws from streams seeded by (seed, prompt ids, j)")
    num_particles: int = option(8, "smc: particles per chain (Power-SMC)")
    ess_threshold: float = option(0.5, "smc: resample when ESS < this x num_particles")
    bridge_tokens: int = option(0, "smc: anneal alpha from 1 over this many first tokens (0 = off)")
    mh_ratio: str = option("exact", "exact: full current suffix + index term; official: the released code's "
                                    "truncated current suffix (issue #11)")

    def __post_init__(self) -> None:
        if math.isnan(self.alpha) or self.alpha < 1:
            raise ValueError(f"alpha must be >= 1, got {self.alpha}")
        if self.block_size <= 0:
            raise ValueError(f"block_size must be > 0, got {self.block_size}")
        if self.mcmc_steps < 0:
            raise ValueError(f"mcmc_steps must be >= 0, got {self.mcmc_steps}")
        if self.max_new_tokens <= 0:
            raise ValueError(f"max_new_tokens must be > 0, got {self.max_new_tokens}")
        if self.proposal_temperature is not None and self.proposal_temperature <= 0:
            raise ValueError(f"proposal_temperature must be > 0, got {self.proposal_temperature}")
        if math.isinf(self.alpha) and self.proposal_temperature is None:
            raise ValueError("alpha=inf needs proposal_temperature (the reference max_swap used 0.25)")
        if self.mh_ratio not in ("exact", "official"):
            raise ValueError(f"mh_ratio must be exact or official, got {self.mh_ratio!r}")
        if self.num_particles < 1:
            raise ValueError(f"num_particles must be >= 1, got {self.num_particles}")
        if not 0 <= self.ess_threshold <= 1:
            raise ValueError(f"ess_threshold must be in [0, 1], got {self.ess_threshold}")
        if self.bridge_tokens < 0:
            raise ValueError(f"bridge_tokens must be >= 0, got {self.bridge_tokens}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    def sampler_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :class:`power_sampling.PowerSampler` from this config."""
        names = [f.name for f in dataclasses.fields(SamplerConfig)]
        return {n: getattr(self, n) for n in names}


@dataclasses.dataclass
class _RunConfig(SamplerConfig):
    model: str = option("", "model: builtin:<name>, a local from_pretrained directory or an HF hub name")
    device: str = option("auto", "cpu, cuda, cuda:1, ... or auto")
    backend: str = option("hf", BACKEND_HELP["backend"])
    tensor_parallel_size: int = option(1, BACKEND_HELP["tensor_parallel_size"])
    gpu_memory_utilization: float = option(0.9, BACKEND_HELP["gpu_memory_utilization"])
    dtype: str = option("auto", "auto (bf16 on CUDA, fp32 on CPU), bf16, fp16 or fp32")
    batch_size: int = option(8, "prompts per batch; every batch runs num_chains chains per prompt together")
    chat_template: bool = option(False, "wrap prompts in the tokenizer's chat template (paper: Phi/Tulu yes, Qwen no)")
    output: str = option("", "JSONL file for the results (required); a rerun skips the records already there")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.model:
            raise ValueError("model is required (builtin:<name>, a local directory or a hub name)")
        if not self.output:
            raise ValueError("output is required (a JSONL path)")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; choose one of: {', '.join(BACKENDS)}")
        if self.tensor_parallel_size < 1:
            raise ValueError(f"tensor_parallel_size must be >= 1, got {self.tensor_parallel_size}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")


@dataclasses.dataclass
class GenerateConfig(_RunConfig):
    """``power-sampling generate``: sample completions for prompts in a JSONL file."""

    input: str = option("", "JSONL file with one prompt per record (required)")
    prompt_field: str = option("prompt", "the record field holding the prompt text")
    id_field: str = option("id", "the record field naming it in the output (the record index if absent)")
    num_chains: int = option(1, "independent chains (final samples) per prompt")
    method: str = option("mh", "mh: the paper's blockwise Metropolis-Hastings; smc: Sequential Monte Carlo "
                               "(num_particles per chain, one weighted draw returned)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.input:
            raise ValueError("input is required (a JSONL file of prompts)")
        if self.num_chains < 1:
            raise ValueError(f"num_chains must be >= 1, got {self.num_chains}")
        if self.method not in ("mh", "smc"):
            raise ValueError(f"method must be mh or smc, got {self.method!r}")


@dataclasses.dataclass
class EvalConfig(_RunConfig):
    """``power-sampling eval``: accuracy / pass@k of one or more methods on a benchmark (Table 1)."""

    task: str = option("math500", "benchmark: math500, humaneval, gpqa or arith")
    input: str = option("", "JSONL/JSON file of problems, builtin:<name>/<file> or hf:<dataset>[:<config>] "
                            "(required)")
    split: str = option("test", "split for hf: datasets")
    method: str = option("power,low_temp,base", "comma-separated: power (MH), smc (Power-SMC), low_temp (1/alpha), "
                                                "base (temperature 1)")
    num_samples: int = option(1, "samples per problem; pass@k is reported for k = 1, 2, 4, ... <= num_samples")
    limit: int = option(0, "evaluate only the first N problems (0 = all)")
    timeout: float = option(3.0, "HumanEval execution timeout in seconds (official harness: 3)")
    prompt_style: str = option("auto", "HumanEval prompt: raw (Qwen), phi (the official rewrite) or auto (phi "
                                       "when the model name contains 'phi')")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.input:
            raise ValueError("input is required (a JSONL/JSON file, builtin:<name>/<file> or hf:<name>)")
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")
        if self.limit < 0:
            raise ValueError(f"limit must be >= 0, got {self.limit}")
        if self.timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {self.timeout}")
        if self.prompt_style not in ("auto", "raw", "phi"):
            raise ValueError(f"prompt_style must be auto, raw or phi, got {self.prompt_style!r}")

    @property
    def methods(self) -> list[str]:
        return [m.strip() for m in self.method.split(",") if m.strip()]
