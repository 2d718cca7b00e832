"""PQN-style soft Q(lambda) training of the Q-RAG embedders (spec: "RL algorithm").

On-policy, no replay buffer: each update rolls ``batch_size/n_envs + 1`` steps in every env, computes
lambda-returns from the target-network soft values stored at acting time, drops the last step per env (it only
bootstraps) and takes one AdamW step on ``0.5 MSE(2 Q1, G) + 0.5 MSE(2 Q2, G)``. Target encoders follow by Polyak
averaging after every optimizer step; the acting (policy) state encoder *is* the critic's (the official code
hard-copies it after every step, which is the same network). Temperature ``alpha_t = alpha_0 lr_t / lr_0``.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import io
import math
import random
from collections.abc import Sequence

import torch
from torch import nn

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
    sample_idx: int
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

    def __init__(self, qf: QFunction, cfg: TrainConfig, train_samples: Sequence[Sample], rank: int = 0,
                 world_size: int = 1):
        if not train_samples:
            raise ValueError("train_samples is empty")
        self.rank, self.world_size = rank, world_size
        self.qf, self.cfg, self.samples = qf, cfg, list(train_samples)
        self.target_state = copy.deepcopy(qf.state_encoder).requires_grad_(False)
        self.target_action = copy.deepcopy(qf.action_encoder).requires_grad_(False)
        params = [p for m in (qf.state_encoder, qf.action_encoder) for p in m.parameters()]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.adam_eps,
                                           weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_lambda(s, cfg.warmup_steps, cfg.total_steps, cfg.schedule,
                                                cfg.final_lr_fraction))
        # every rank acts in its own episodes (its own data draws): seeds differ by rank
        self.rng = random.Random(cfg.seed + 1_000_003 * rank)
        self.gen = torch.Generator().manual_seed(cfg.seed + 1_000_003 * rank)
        # all trainable and target weights in one module (what a checkpoint's model.pt holds)
        self.modules = nn.ModuleDict({"state_encoder": qf.state_encoder, "action_encoder": qf.action_encoder,
                                      "target_state": self.target_state, "target_action": self.target_action})
        self.step = 0
        self.transitions_seen = 0
        self.episodes: list[_Episode] = []
        self.finished_returns: list[float] = []
        self.drawn: list[int] = []  # sample indices this rank's episodes used (logged in the run summary)

    @property
    def alpha(self) -> float:
        """``alpha_t = alpha_0 * lr_t / lr_0`` (the temperature follows the LR schedule)."""
        return self.cfg.alpha * self.optimizer.param_groups[0]["lr"] / self.cfg.lr

    # acting -----------------------------------------------------------------------------------------------
    def _reset(self, k: int) -> list[_Episode]:
        """Start ``k`` episodes; their chunk embeddings (critic and target) are computed in one batch each."""
        idx = [self.rng.randrange(len(self.samples)) for _ in range(k)]
        self.drawn += idx
        picks = [self.samples[i] for i in idx]
        texts = [c for s in picks for c in s.chunks]
        with torch.no_grad():
            cand = self.qf.embed_actions(texts).split([len(s.chunks) for s in picks])
            cand_t = self.qf.embed_actions(texts, encoder=self.target_action).split([len(s.chunks) for s in picks])
        return [_Episode(i, s, c, ct) for i, s, c, ct in zip(idx, picks, cand, cand_t, strict=True)]

    @torch.no_grad()
    def act(self) -> list[Transition]:
        """One step in every env; returns one transition per env (episodes reset after ``max_steps``)."""
        cfg = self.cfg
        if len(self.episodes) < cfg.n_envs:
            self.episodes += self._reset(cfg.n_envs - len(self.episodes))
        eps = self.episodes
        qs = [e.sample.question for e in eps]
        texts = [state_chunks(e.sample.chunks, e.retrieved, self.qf.sort_by_index) for e in eps]
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
        if self.world_size > 1:  # data-parallel: average gradients (and the logged loss) over ranks, as DDP does
            for p in params:
                if p.grad is not None:
                    torch.distributed.all_reduce(p.grad)
                    p.grad /= self.world_size
            total = _mean_over_ranks(total, self.world_size)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
        self.optimizer.step()
        self.scheduler.step()
        self._polyak()
        self.step += 1
        recent = self.finished_returns[-100:]
        train_return = sum(recent) / len(recent) if recent else 0.0
        mean_target = float(returns.mean())
        if self.world_size > 1:
            train_return = _mean_over_ranks(train_return, self.world_size)
            mean_target = _mean_over_ranks(mean_target, self.world_size)
        return {"step": self.step, "loss": total, "grad_norm": grad_norm, "lr": self.optimizer.param_groups[0]["lr"],
                "alpha": self.alpha, "mean_target": mean_target, "train_return": train_return}

    @torch.no_grad()
    def _polyak(self) -> None:
        tau = self.cfg.tau
        for tgt, src in ((self.target_state, self.qf.state_encoder), (self.target_action, self.qf.action_encoder)):
            for pt, ps in zip(tgt.parameters(), src.parameters(), strict=True):
                pt.mul_(1 - tau).add_(ps, alpha=tau)

    # checkpoints ------------------------------------------------------------------------------------------
    def loop_state(self) -> dict:
        """This rank's loop state beyond the weights/optimizer (JSON): counters, private RNGs, live episodes.

        Live episodes are saved with their chunk embeddings (computed at reset with the then-current encoders),
        so a resumed run continues them exactly as the uninterrupted run would.
        """
        eps = []
        for e in self.episodes:
            buf = io.BytesIO()
            torch.save((e.cand.cpu(), e.cand_target.cpu()), buf)
            eps.append({"sample": e.sample_idx, "retrieved": list(e.retrieved), "rewarded": e.rewarded,
                        "ret": e.ret, "emb": base64.b64encode(buf.getvalue()).decode("ascii")})
        return {"transitions_seen": self.transitions_seen, "rng": _jsonable(self.rng.getstate()),
                "gen": base64.b64encode(self.gen.get_state().numpy().tobytes()).decode("ascii"),
                "finished_returns": self.finished_returns[-100:], "episodes": eps}

    def load_loop_state(self, st: dict, step: int) -> None:
        """Restore :meth:`loop_state` (after the weights/optimizer/scheduler were loaded)."""
        import numpy as np

        self.step = step
        self.transitions_seen = int(st["transitions_seen"])
        self.rng.setstate(_tuples(st["rng"]))
        self.gen.set_state(torch.from_numpy(np.frombuffer(base64.b64decode(st["gen"]), dtype=np.uint8).copy()))
        self.finished_returns = list(st["finished_returns"])
        self.episodes = []
        dev = self.qf.device
        for e in st["episodes"]:
            cand, cand_t = torch.load(io.BytesIO(base64.b64decode(e["emb"])), map_location="cpu", weights_only=True)
            self.episodes.append(_Episode(int(e["sample"]), self.samples[int(e["sample"])], cand.to(dev),
                                          cand_t.to(dev), list(e["retrieved"]), bool(e["rewarded"]), float(e["ret"])))


def _jsonable(x):
    return [_jsonable(v) for v in x] if isinstance(x, list | tuple) else x


def _tuples(x):
    return tuple(_tuples(v) for v in x) if isinstance(x, list | tuple) else x


def _mean_over_ranks(value: float, world_size: int) -> float:
    t = torch.tensor([float(value)], dtype=torch.float64)
    torch.distributed.all_reduce(t)
    return float(t[0]) / world_size
