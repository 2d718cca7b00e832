"""PQN-style soft Q(lambda) training of the Q-RAG embedders (spec: "RL algorithm").

On-policy, no replay buffer: each update rolls ``batch_size/n_envs + 1`` steps in every env, computes
lambda-returns from the target-network soft values stored at acting time, drops the last step per env (it only
bootstraps) and takes one AdamW step on ``0.5 MSE(2 Q1, G) + 0.5 MSE(2 Q2, G)``. Target encoders follow by Polyak
averaging after every optimizer step; the acting (policy) state encoder *is* the critic's (the official code
hard-copies it after every step, which is the same network). Temperature ``alpha_t = alpha_0 lr_t / lr_0``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
from collections.abc import Sequence

import torch

from .config import TrainConfig
from .data import Sample
from .lambda_return import compute_lambda_returns
from .q_function import QFunction
from .retriever import state_chunks
from .reward import compute_terminal_reward
from .soft_q import compute_q_loss, compute_soft_value, compute_twin_q, sample_top_k_action

__all__ = ["Transition", "PQNTrainer", "lr_lambda"]


@dataclasses.dataclass
class Transition:
    """One acting step.

    Holds the state (question + retrieved texts), the action text and position, reward, done, and the
    target-network soft value ``V(s_t)`` of the state acted in.
    """

    question: str
    state_texts: list[str]
    action_text: str
    position: int | None
    reward: float
    done: bool
    value: float


@dataclasses.dataclass
class _Episode:
    sample: Sample
    cand: torch.Tensor  # (N, d) critic E_a, unrotated, computed once at reset
    cand_target: torch.Tensor  # (N, d) target E_a'
    retrieved: list[int] = dataclasses.field(default_factory=list)
    rewarded: bool = False
    ret: float = 0.0


def lr_lambda(step: int, warmup: int, total: int, schedule: str = "linear", final: float = 0.0) -> float:
    """LR multiplier: linear warm-up to 1 over ``warmup`` steps, then linear/cosine decay to ``final`` at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    frac = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "cosine":
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * frac))
    return final + (1 - final) * (1 - frac)


class PQNTrainer:
    """Holds the critic Q-function, target encoders, optimizer, scheduler and the live episodes."""

    def __init__(self, qf: QFunction, cfg: TrainConfig, train_samples: Sequence[Sample]):
        if not train_samples:
            raise ValueError("train_samples is empty")
        self.qf, self.cfg, self.samples = qf, cfg, list(train_samples)
        self.target_state = copy.deepcopy(qf.state_encoder).requires_grad_(False)
        self.target_action = copy.deepcopy(qf.action_encoder).requires_grad_(False)
        params = [p for m in (qf.state_encoder, qf.action_encoder) for p in m.parameters()]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.adam_eps,
                                           weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_lambda(s, cfg.warmup_steps, cfg.total_steps, cfg.schedule,
                                                cfg.final_lr_fraction))
        self.rng = random.Random(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.step = 0
        self.transitions_seen = 0
        self.episodes: list[_Episode] = []
        self.finished_returns: list[float] = []

    @property
    def alpha(self) -> float:
        """``alpha_t = alpha_0 * lr_t / lr_0`` (the temperature follows the LR schedule)."""
        return self.cfg.alpha * self.optimizer.param_groups[0]["lr"] / self.cfg.lr

    # acting -----------------------------------------------------------------------------------------------
    def _reset(self, k: int) -> list[_Episode]:
        """Start ``k`` episodes; their chunk embeddings (critic and target) are computed in one batch each."""
        picks = [self.samples[self.rng.randrange(len(self.samples))] for _ in range(k)]
        texts = [c for s in picks for c in s.chunks]
        with torch.no_grad():
            cand = self.qf.embed_actions(texts).split([len(s.chunks) for s in picks])
            cand_t = self.qf.embed_actions(texts, encoder=self.target_action).split([len(s.chunks) for s in picks])
        return [_Episode(s, c, ct) for s, c, ct in zip(picks, cand, cand_t, strict=True)]

    @torch.no_grad()
    def act(self) -> list[Transition]:
        """One step in every env; returns one transition per env (episodes reset after ``max_steps``)."""
        cfg = self.cfg
        if len(self.episodes) < cfg.n_envs:
            self.episodes += self._reset(cfg.n_envs - len(self.episodes))
        eps = self.episodes
        qs = [e.sample.question for e in eps]
        texts = [state_chunks(e.sample.chunks, e.retrieved, cfg.sort_by_index) for e in eps]
        s = self.qf.embed_states(qs, texts)  # (E, d) policy = critic
        s_t = self.qf.embed_states(qs, texts, encoder=self.target_state)  # (E, d) target
        out = []
        for i, e in enumerate(eps):
            n = len(e.sample.chunks)
            pos = self.qf.positions(n, e.retrieved)
            mask = torch.ones(1, n, dtype=torch.bool)
            mask[0, e.retrieved] = False
            q1, q2 = compute_twin_q(s[i : i + 1], self.qf.rotate(e.cand, pos)[None])  # (1, N)
            tq1, tq2 = compute_twin_q(s_t[i : i + 1], self.qf.rotate(e.cand_target, pos)[None])
            value = float(compute_soft_value(tq1, tq2, mask, max(self.alpha, 1e-8), cfg.top_k)[0])
            if self.transitions_seen < 2 * cfg.learning_start:
                avail = mask[0].nonzero().squeeze(-1)
                a = int(avail[torch.randint(len(avail), (1,), generator=self.gen)])
            else:
                a = int(sample_top_k_action(q1 + q2, mask, self.alpha, cfg.top_k, self.gen)[0])
            e.retrieved.append(a)
            r = compute_terminal_reward(e.retrieved, e.sample.sf_idx, e.rewarded, cfg.penalize_extra_steps)
            e.rewarded = e.rewarded or r > 0
            e.ret += r
            done = len(e.retrieved) >= min(cfg.max_steps, n)  # never_terminate: always run max_steps
            out.append(Transition(qs[i], texts[i], e.sample.chunks[a], None if pos is None else int(pos[a]),
                                  r, done, value))
            self.transitions_seen += 1
            if done:
                self.finished_returns.append(e.ret)
        ended = [i for i, t in enumerate(out) if t.done]
        for i, e in zip(ended, self._reset(len(ended)) if ended else [], strict=True):
            eps[i] = e
        return out

    def collect(self) -> tuple[list[Transition], torch.Tensor]:
        """Roll ``batch_size/n_envs + 1`` steps per env; return ``batch_size`` transitions and their returns."""
        cfg = self.cfg
        steps = [self.act() for _ in range(cfg.batch_size // cfg.n_envs + 1)]  # (T+1) x E
        rewards = torch.tensor([[t.reward for t in row] for row in steps])  # (T+1, E)
        dones = torch.tensor([[float(t.done) for t in row] for row in steps])
        values = torch.tensor([[t.value for t in row] for row in steps])
        returns = compute_lambda_returns(rewards[:-1], dones[:-1], values[1:], cfg.gamma, cfg.lam)  # (T, E)
        batch = [t for row in steps[:-1] for t in row]
        return batch, returns.reshape(-1)

    # learning ---------------------------------------------------------------------------------------------
    def loss(self, batch: Sequence[Transition], returns: torch.Tensor) -> torch.Tensor:
        """Critic loss on re-encoded states and actions (gradients through both encoders)."""
        s = self.qf.embed_states([t.question for t in batch], [t.state_texts for t in batch])  # (B, d)
        a = self.qf.embed_actions([t.action_text for t in batch])  # (B, d)
        pos = None if batch[0].position is None else torch.tensor([t.position for t in batch])
        q1, q2 = self.qf.q_values(s, a, pos)
        return compute_q_loss(q1, q2, returns.to(s.device, s.dtype))

    def update(self) -> dict[str, float]:
        """Collect a rollout and take one optimizer step; returns logged metrics."""
        cfg = self.cfg
        batch, returns = self.collect()
        self.optimizer.zero_grad()
        size = len(batch) // cfg.accumulate_grads
        total = 0.0
        for i in range(cfg.accumulate_grads):
            sl = slice(i * size, (i + 1) * size)
            loss = self.loss(batch[sl], returns[sl]) / cfg.accumulate_grads
            loss.backward()
            total += float(loss.detach())
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
        self.optimizer.step()
        self.scheduler.step()
        self._polyak()
        self.step += 1
        recent = self.finished_returns[-100:]
        return {"step": self.step, "loss": total, "grad_norm": grad_norm, "lr": self.optimizer.param_groups[0]["lr"],
                "alpha": self.alpha, "mean_target": float(returns.mean()),
                "train_return": sum(recent) / len(recent) if recent else 0.0}

    @torch.no_grad()
    def _polyak(self) -> None:
        tau = self.cfg.tau
        for tgt, src in ((self.target_state, self.qf.state_encoder), (self.target_action, self.qf.action_encoder)):
            for pt, ps in zip(tgt.parameters(), src.parameters(), strict=True):
                pt.mul_(1 - tau).add_(ps, alpha=tau)

    # checkpoints ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to resume: critic, targets, optimizer, scheduler, alpha, counters, RNG states."""
        return {"state_encoder": self.qf.state_encoder.state_dict(),
                "action_encoder": self.qf.action_encoder.state_dict(),
                "target_state": self.target_state.state_dict(), "target_action": self.target_action.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "alpha": self.alpha, "step": self.step, "transitions_seen": self.transitions_seen,
                "rng": self.rng.getstate(), "gen": self.gen.get_state(), "settings": self.qf.settings()}

    def load_state_dict(self, sd: dict) -> None:
        """Restore from :meth:`state_dict` (live episodes restart fresh)."""
        self.qf.state_encoder.load_state_dict(sd["state_encoder"])
        self.qf.action_encoder.load_state_dict(sd["action_encoder"])
        self.target_state.load_state_dict(sd["target_state"])
        self.target_action.load_state_dict(sd["target_action"])
        self.optimizer.load_state_dict(sd["optimizer"])
        self.scheduler.load_state_dict(sd["scheduler"])
        self.step, self.transitions_seen = sd["step"], sd["transitions_seen"]
        self.rng.setstate(sd["rng"])
        self.gen.set_state(sd["gen"])
        self.episodes = []
