import collections

import torch
from power_sampling.generator_backend import GeneratorPowerSampler
from power_sampling.power_distribution import (
    compute_power_distribution,
    compute_total_variation,
    enumerate_sequences,
)
from rlcore.rollout import Completion, HFGenerator, process_logits
from rlcore.testing import TableLM, tiny_causal_lm, tiny_tokenizer


class _RowwiseTableGenerator:
    """A Generator over TableLM that samples each row unpadded (TableLM reads positions from columns)."""

    def __init__(self, lm):
        self.lm = lm

    def generate(self, prompts=None, prompt_ids=None, params=None, generator=None, *, seeds=None):
        out = []
        for p, seed in zip(prompt_ids, seeds):
            self.g = torch.Generator().manual_seed(seed)
            seq, lq, lp = list(p), [], []
            for _ in range(params.max_new_tokens):
                logits = self.lm(torch.tensor([seq])).logits[0, -1]
                q = torch.log_softmax(process_logits(logits[None], params.temperature)[0], -1)
                t = int(torch.multinomial(q.exp(), 1, generator=self.g))
                seq.append(t)
                lq.append(float(q[t]))
                lp.append(float(torch.log_softmax(logits, -1)[t]))
                if t in params.stop_token_ids:
                    break
            ids = seq[len(p):]
            out.append([Completion(0, ids, "", torch.tensor(lq), torch.tensor(lp), "length")])
        return out


def test_generator_backend_approaches_power_distribution():
    lm = TableLM(vocab_size=3, max_len=8, seed=1, sharpness=1.5, eos_token_id=2)
    en = enumerate_sequences(lm, [0], 4, 2, temperature=0.25)
    seqs = list(en)
    pi = dict(zip(seqs, compute_power_distribution(torch.tensor([en[s][0] for s in seqs]), 4.0).tolist()))
    low = {s: float(torch.tensor(en[s][1]).exp()) for s in seqs}
    s = GeneratorPowerSampler(_RowwiseTableGenerator(lm), alpha=4.0, block_size=4, mcmc_steps=8, max_new_tokens=4,
                              eos_token_id=2, seed=0)
    out = s.sample(input_ids=[[0]], num_chains=300)
    emp = {k: v / 300 for k, v in collections.Counter(tuple(o.token_ids) for o in out).items()}
    tv_low = compute_total_variation(pi, low)
    assert compute_total_variation(emp, pi) < tv_low / 3, (compute_total_variation(emp, pi), tv_low)


def test_generator_backend_chains_independent_of_batch():
    lm = TableLM(vocab_size=4, max_len=12, seed=3, sharpness=1.0, eos_token_id=3)
    kw = dict(alpha=4.0, block_size=3, mcmc_steps=2, max_new_tokens=6, eos_token_id=3, seed=5)
    run = lambda ids, n: GeneratorPowerSampler(_RowwiseTableGenerator(lm), **kw).sample(  # noqa: E731
        input_ids=ids, num_chains=n)
    alone = [s.token_ids for s in run([[0]], 2)]
    assert alone == [s.token_ids for s in run([[1, 2], [0]], 2)[2:]] == [s.token_ids for s in run([[0]], 4)[:2]]


def test_generator_backend_runs_on_hf_generator():
    tok = tiny_tokenizer()
    gen = HFGenerator(tiny_causal_lm(tok), tok)
    out = GeneratorPowerSampler(gen, alpha=4.0, block_size=3, mcmc_steps=2, max_new_tokens=6, eos_token_id=None,
                                seed=0).sample(prompts=["hello", "a b"], num_chains=2)
    assert [(o.prompt_index, o.chain_index) for o in out] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert all(len(o.token_ids) == 6 and o.tokens_generated >= 6 and 0 <= o.acceptance_rate <= 1 for o in out)
