"""rlcore: the thin shared core of the rl-orals packages.

Modules (import what you need; torch-heavy modules are not imported here):
``rlcore.rollout`` (batched sampling with log-probs, scoring), ``rlcore.pg`` (advantages, surrogate, KL,
aggregation), ``rlcore.rewards`` (TRL reward protocol, parsing helpers), ``rlcore.training`` (GRPOConfig builder,
accelerate configs), ``rlcore.cli`` / ``rlcore.io`` (CLI, config and JSONL conventions), ``rlcore.device``,
``rlcore.builtins`` (``builtin:<name>`` models and data), ``rlcore.lm`` (the LM interface), ``rlcore.testing``.
"""

__version__ = "0.1.0"
