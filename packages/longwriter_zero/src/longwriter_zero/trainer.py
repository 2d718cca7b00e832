"""``LongWriterGRPOTrainer``: TRL's ``GRPOTrainer`` with LongWriter-Zero's advantage averaging.

What differs from the parent (trl 1.16), and nothing else:

- ``_calculate_rewards`` (called once per generation batch inside ``_generate_and_score_completions``) is
  wrapped to keep the gathered ``(B_all, K)`` reward matrix.
- ``_generate_and_score_completions`` calls the parent, then replaces ``output["advantages"]`` with
  :func:`longwriter_zero.advantage.compute_averaged_advantages` of that matrix (sliced to this process), and
  rewrites the logged advantages. TRL 1.16 computes advantages inline in that method with no separate hook, so
  this is the narrowest override that does not copy the parent's code. TRL's own ``multi_objective_aggregation``
  setting is ignored (see :mod:`longwriter_zero.advantage` for how it differs).
- ``reward_mode="gated"`` (beyond the paper, RLMR-style): the reward function named ``constraint_reward``
  (:mod:`longwriter_zero.verifier`) gates the averaged advantages with
  :func:`longwriter_zero.advantage.compute_gated_advantages`; its weight in the average should be 0.

Everything else (generation, vLLM, KL, clipping, loss aggregation, checkpointing, resume) is TRL's.
"""

from __future__ import annotations

from typing import Any

from trl import GRPOTrainer

from .advantage import compute_averaged_advantages, compute_gated_advantages

__all__ = ["LongWriterGRPOTrainer"]


class LongWriterGRPOTrainer(GRPOTrainer):
    """GRPO with per-reward group normalisation then averaging (paper §RQ1). See the module docstring.

    Args:
        reward_mode: ``"average"`` (paper) or ``"gated"`` (violators of the constraint verifier ranked last).
        gate_margin: how far below the lowest compliant advantage a violator lands (gated mode).
        *args, **kwargs: ``trl.GRPOTrainer``'s.
    """

    def __init__(self, *args: Any, reward_mode: str = "average", gate_margin: float = 1.0, **kwargs: Any):
        if reward_mode not in ("average", "gated"):
            raise ValueError(f"reward_mode must be average or gated, got {reward_mode!r}")
        super().__init__(*args, **kwargs)
        self.reward_mode, self.gate_margin = reward_mode, gate_margin
        self._gate_index = None
        self._lwz_last_questions: list[str] = []
        if reward_mode == "gated":
            names = [getattr(f, "__name__", "") for f in self.reward_funcs]
            if "constraint_reward" not in names:
                raise ValueError("reward_mode='gated' needs the constraint_reward among the reward functions")
            self._gate_index = names.index("constraint_reward")

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._lwz_rewards_per_func = rewards_per_func  # (B_all, K), gathered over processes
        return rewards_per_func

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        self._lwz_last_questions = [str(x.get("question", x.get("prompt", ""))) for x in inputs]  # sharding check
        output = super()._generate_and_score_completions(inputs)
        rewards_per_func = self._lwz_rewards_per_func
        mode = "train" if self.model.training else "eval"
        group_size = self.num_generations if mode == "train" else self.num_generations_eval
        if self._gate_index is None:
            all_adv = compute_averaged_advantages(rewards_per_func, group_size, weights=self.reward_weights)  # (B_all,)
        else:
            compliant = rewards_per_func[:, self._gate_index].nan_to_num(0.0) > 0.5  # (B_all,)
            all_adv = compute_gated_advantages(rewards_per_func, group_size, compliant, self.reward_weights,
                                               self.gate_margin)
        n_local = output["advantages"].shape[0]
        start = self.accelerator.process_index * n_local
        output["advantages"] = all_adv[start : start + n_local].to(output["advantages"])
        logged = self._logs["advantages"]  # deque; the parent just appended B_all values
        for _ in range(min(len(all_adv), len(logged))):
            logged.pop()
        logged.extend(all_adv.tolist())
        return output
