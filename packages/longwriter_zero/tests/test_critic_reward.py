import pytest
from longwriter_zero.critic_reward import CriticReward, parse_critic_score


@pytest.mark.parametrize("text, expected", [
    ("Vivid and on topic.\nScore: 8", 8),
    ("score = 3", 3),
    ("Score: **9**", 9),
    ("First Score: 2, on reflection Score: 6", 6),   # the last verdict counts
    ("Score: 0", None), ("Score: 11", None),          # out of 1-10
    ("I would give it a seven.", None), ("", None),
])
def test_parse_critic_score(text, expected):
    assert parse_critic_score(text) == expected


def test_critic_reward_batches_through_rlcore_and_rescales():
    from rlcore.testing import ScriptedGenerator, recording_generators, tiny_tokenizer

    tok = tiny_tokenizer()

    def critic(prompt):  # scores by the answer inside the prompt
        answer = prompt.split("[Response]")[1]
        return "Good. Score: 10" if "superb" in answer else ("Weak. Score: 1" if "bad" in answer else "hmm")

    gen = ScriptedGenerator(critic, tok)
    reward = CriticReward(gen, tok, batch_size=2)
    comps = ["<think>t</think><answer>a superb essay", "<think>t</think><answer>a bad essay",
             "<think>t</think><answer>unclear", "no answer tags at all"]
    with recording_generators() as calls:
        out = reward(prompts=["p"] * 4, completions=comps, question=["Write."] * 4)
    # (10 - 1) / 9 = 1, (1 - 1) / 9 = 0, unparsable -> None, no answer -> None (not sent to the critic)
    assert out == [1.0, 0.0, None, None]
    assert reward.unparsable == 1
    assert [len(c.prompt_ids) for c in calls] == [2, 1]  # 3 answered pairs in batches of 2
    assert all(c.kind == "generate" and c.params.temperature == 0.0 for c in calls)


def test_train_config_takes_one_quality_reward():
    from longwriter_zero.config import TrainConfig

    with pytest.raises(ValueError, match="not both"):
        TrainConfig(model="m", input="d.jsonl", rm_model="rm", critic_model="critic")


def test_parser_is_total_and_linear():
    from rlcore.testing import fuzz_total

    fuzz_total(parse_critic_score, check=lambda v: v is None or 1 <= v <= 10)
