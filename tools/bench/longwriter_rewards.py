"""LongWriter-Zero reward cost: the three rewards on one GRPO group of 32 answers of ~14K tokens each.

Usage: uv run --no-sync python tools/bench/longwriter_rewards.py [--group 32] [--tokens 14000] [--repeats 3]

Answers are synthetic English prose (random words from a 2,000-word vocabulary, 60-120-word paragraphs) of
``--tokens * --words-per-token`` words: 0.75 words per token is typical of English under a 150K-vocabulary BPE such
as Qwen2.5's (no such tokenizer is available offline), so 14,000 tokens ~ 10,500 words ~ 70 KB. Half of the group
repeats its paragraphs (the case the Format RM's repetition check exists for). Timed per group, best of ``--repeats``, on one
thread (torch.set_num_threads(1)):

- length reward (word count of the answer + piecewise reward),
- format reward (structure check + repetition rate): the default ``both`` (hashed n-grams + MinHash content-word
  Jaccard for paraphrases) against ``ngram`` only, in the same run (ratio printed), and the mean reward of a group
  whose repeats are *reworded* (30% of the words changed) under each mode,
- the repetition check alone on one answer at 1x/2x/4x/8x length (near-linear scaling check),
- writing reward with a random-init tiny Qwen2 RM (scores only the first/last 4,096 tokens by the head_tail policy),
- one GRPO step of the tiny model (G=8, 16-token completions) for scale: reward overhead as a share of it.

Prints one JSON object. Target (issue 5): length + format rewards for the group under 0.5 s on one core.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import warnings

warnings.simplefilter("ignore", FutureWarning)  # TRL 1.16 uses transformers' deprecated gradient_checkpointing alias


def make_answer(rng: random.Random, vocab: list[str], n_words: int, repeat: bool) -> str:
    paras, total = [], 0
    while total < n_words:
        if repeat and paras and rng.random() < 0.5:
            p = rng.choice(paras)
        else:
            p = " ".join(rng.choice(vocab) for _ in range(rng.randint(60, 120))) + "."
        paras.append(p)
        total += p.count(" ") + 1
    return "\n\n".join(paras)


def best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--group", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=14000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--words-per-token", type=float, default=0.75)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from longwriter_zero.format_reward import compute_repetition_rate, get_format_reward
    from longwriter_zero.length_reward import get_length_reward
    from rlcore.testing import tiny_tokenizer

    tok = tiny_tokenizer()
    rng = random.Random(0)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(2000)]
    n_words = int(args.tokens * args.words_per_token)
    answers = [make_answer(rng, vocab, n_words, repeat=i % 2 == 1) for i in range(args.group)]
    completions = ["<think>plan the essay</think>\n<answer>" + a for a in answers]
    n_chars = sum(len(a) for a in answers) / len(answers)
    prompts = ["q"] * args.group
    ranges = [[6000, 9000]] * args.group

    length_f, format_f = get_length_reward(), get_format_reward()
    t_len = best_of(lambda: length_f(prompts=prompts, completions=completions, length_range=ranges), args.repeats)
    t_fmt = best_of(lambda: format_f(prompts=prompts, completions=completions), args.repeats)
    fmt_vals = format_f(prompts=prompts, completions=completions)
    ngram_f = get_format_reward(repetition="ngram")
    t_fmt_ngram = best_of(lambda: ngram_f(prompts=prompts, completions=completions), args.repeats)

    def reword(text: str) -> str:  # 30% of the words replaced: a paraphrased repeat
        words = text.split(" ")
        for i in rng.sample(range(len(words)), int(0.3 * len(words))):
            words[i] = rng.choice(vocab)
        return " ".join(words)

    para_answers = []
    for _ in range(args.group):
        base = make_answer(rng, vocab, n_words // 2, repeat=False)
        para_answers.append("<think>plan</think>\n<answer>" + base + "\n\n" + reword(base))
    para_both = format_f(prompts=prompts, completions=para_answers)
    para_ngram = ngram_f(prompts=prompts, completions=para_answers)
    scaling = {}
    for mult in (1, 2, 4, 8):
        text = make_answer(random.Random(mult), vocab, n_words * mult, False)
        scaling[f"{mult}x"] = best_of(lambda t=text: compute_repetition_rate(t), max(5, args.repeats))

    with tempfile.TemporaryDirectory() as d:
        from longwriter_zero.config import TrainConfig
        from longwriter_zero.train import train
        from longwriter_zero.writing_reward import get_writing_reward
        from rlcore.testing import save_tiny_causal_lm, tiny_qwen2_config
        from transformers import Qwen2ForSequenceClassification

        torch.manual_seed(0)
        Qwen2ForSequenceClassification(tiny_qwen2_config(tok, num_labels=1)).save_pretrained(f"{d}/rm")
        tok.save_pretrained(f"{d}/rm")
        writing_f = get_writing_reward(f"{d}/rm", max_length=4096, batch_size=8, device="cpu")
        writing_f.load()
        questions = ["Write a long essay."] * args.group
        t_write = best_of(lambda: writing_f(prompts=prompts, completions=completions, question=questions), 1)

        policy = save_tiny_causal_lm(f"{d}/policy")
        with open(f"{d}/p.jsonl", "w") as f:
            f.write(json.dumps({"question": "Write a story", "length_range": [5, 10]}) + "\n")
        cfg = TrainConfig(model=policy, input=f"{d}/p.jsonl", output_dir=f"{d}/run", untagged="whole",
                          template="<|user|>: {question} <|assistant|>:", num_generations=8,
                          per_device_train_batch_size=8, max_steps=3, max_completion_length=16, save_steps=0,
                          device="cpu")
        hist = train(cfg)["log_history"]
        step_times = [h["step_time"] for h in hist if "step_time" in h]
        t_step = min(step_times)

    lf = t_len + t_fmt
    print(json.dumps({
        "group": args.group, "answer_tokens": args.tokens, "answer_words": n_words,
        "answer_chars_mean": round(n_chars),
        "length_reward_s": round(t_len, 4), "format_reward_s": round(t_fmt, 4), "length_plus_format_s": round(lf, 4),
        "target_met": lf < 0.5, "format_reward_mean_repeated_half": round(sum(fmt_vals[1::2]) / len(fmt_vals[1::2]), 3),
        "format_reward_mean_distinct_half": round(sum(fmt_vals[0::2]) / len(fmt_vals[0::2]), 3),
        "format_reward_ngram_only_s": round(t_fmt_ngram, 4), "format_both_vs_ngram_ratio": round(t_fmt / t_fmt_ngram, 2),
        "reworded_repeats_format_mean_both": round(sum(para_both) / len(para_both), 3),
        "reworded_repeats_format_mean_ngram": round(sum(para_ngram) / len(para_ngram), 3),
        "repetition_check_s_by_length": {k: round(v, 4) for k, v in scaling.items()},
        "writing_reward_tiny_rm_s": round(t_write, 3),
        "tiny_grpo_step_s": round(t_step, 3),
        "length_plus_format_share_of_tiny_step": round(lf / t_step, 3),
    }))


if __name__ == "__main__":
    main()
