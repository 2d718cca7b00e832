"""CPU learning test on synthetic multi-hop fact stories ("where was X before Y?", two support facts)."""

import pytest
import torch
from q_rag.babilong import build_synthetic_dataset
from q_rag.config import TrainConfig
from q_rag.retriever import evaluate_retrieval
from q_rag.train import run_training


def _train_and_eval(tiny_qf_factory, position, train, test, steps):
    qf = tiny_qf_factory(position=position, hidden=32, seed=0)
    before = evaluate_retrieval(qf, test, max_steps=2)
    cfg = TrainConfig(input="mem", max_steps=2, lr=1e-3, warmup_steps=10, total_steps=steps, batch_size=32,
                      n_envs=8, learning_start=50, alpha=0.05, eval_interval=10**9, seed=0)
    run_training(qf, cfg, train)
    return before, evaluate_retrieval(qf, test, max_steps=2)


@pytest.mark.slow
def test_training_beats_untrained_and_relative_beats_none(tiny_qf_factory):
    torch.set_num_threads(2)
    train = build_synthetic_dataset("before", 300, 120, seed=0, n_facts=6)
    test = build_synthetic_dataset("before", 40, 120, seed=1, n_facts=6)
    rel_before, rel_after = _train_and_eval(tiny_qf_factory, "relative", train, test, steps=150)
    _, none_after = _train_and_eval(tiny_qf_factory, "none", train, test, steps=150)
    assert rel_after["sf_recall"] > rel_before["sf_recall"] + 0.2, (rel_before, rel_after)
    assert rel_after["sf_recall"] > none_after["sf_recall"] + 0.05, (rel_after, none_after)
