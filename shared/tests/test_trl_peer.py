"""rlcore against TRL's own GRPOTrainer: the same advantages, and one real training step on CPU."""

import pytest
import torch
from rlcore import pg
from rlcore.rewards import extract_boxed
from rlcore.testing import tiny_causal_lm, tiny_tokenizer
from rlcore.training import make_grpo_config

REWARDS = [1.0, 0.0, 0.5, None, 2.0, 2.0, 2.0, 2.0]  # group 1 with a None, group 2 all equal


class FixedReward:
    """Returns preset rewards in order, whatever the completions (to compare advantage maths exactly)."""

    __name__ = "fixed_reward"

    def __call__(self, prompts, completions, **kwargs):
        return list(REWARDS[: len(completions)])


def boxed_reward(prompts, completions, **kwargs):
    """An rlcore-helper reward in TRL's signature: 1 if the completion has a \\boxed{} answer, else length share."""
    return [1.0 if extract_boxed(c) is not None else len(c) / 100 for c in completions]


@pytest.fixture(scope="module")
def trainer_factory(tmp_path_factory):
    from datasets import Dataset
    from trl import GRPOTrainer

    def make(reward_funcs, max_steps=1, scale_rewards="group"):
        tok = tiny_tokenizer()
        args = make_grpo_config(str(tmp_path_factory.mktemp("grpo")), per_device_train_batch_size=8,
                                num_generations=4, max_completion_length=8, max_steps=max_steps,
                                learning_rate=5e-2, scale_rewards=scale_rewards, seed=0)
        ds = Dataset.from_dict({"prompt": ["2+2=", "3*3=", "1+5=", "7-2="]})
        return GRPOTrainer(model=tiny_causal_lm(tok), reward_funcs=reward_funcs, args=args, train_dataset=ds,
                           processing_class=tok)

    return make


@pytest.mark.parametrize("scale", ["group", "none", "batch"])
def test_advantages_equal_trl(trainer_factory, scale):
    trainer = trainer_factory([FixedReward()], scale_rewards=scale)
    inputs = [{"prompt": p} for p in ["2+2="] * 4 + ["3*3="] * 4]
    out = trainer._generate_and_score_completions(inputs)
    r = torch.tensor([float("nan") if v is None else v for v in REWARDS])
    fn = {"group": pg.compute_grpo_advantages, "none": pg.compute_dr_grpo_advantages,
          "batch": pg.compute_batch_scaled_advantages}[scale]
    torch.testing.assert_close(out["advantages"].float().cpu(), fn(r, 4), atol=1e-5, rtol=1e-5)


def test_grpo_trainer_one_step_with_rlcore_reward(trainer_factory):
    trainer = trainer_factory([boxed_reward], max_steps=1)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert logs and all(torch.isfinite(torch.tensor(h["loss"])) for h in logs)
    assert "rewards/boxed_reward/mean" in logs[0]
    changed = sum(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    assert changed == len(before)
