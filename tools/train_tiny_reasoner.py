"""Train ``builtin:tiny-reasoner``: a small Qwen2-style LM that reasons in ``<think>`` and answers in ``\\boxed{}``.

Everything is generated here, from one seed: the synthetic problems (multi-step arithmetic and multi-hop variable
look-ups), a byte-level BPE tokenizer (digits split one per token), and the model, trained from scratch with a plain
PyTorch loop. The model is deliberately imperfect: it solves a fair share of held-out problems when sampled at
temperature 1, but not all of them, so better sampling (low temperature, power sampling) and RL have room to improve.

Usage (from the workspace root)::

    uv run --no-sync python tools/train_tiny_reasoner.py            # train, evaluate, write model + data + card
    uv run --no-sync python tools/train_tiny_reasoner.py --evaluate # re-evaluate the committed model vs its card
    uv run --no-sync python tools/train_tiny_reasoner.py --check    # re-train in a temp dir, compare with the card

Prompt format (the exact function is :func:`build_prompt`)::

    Question: Compute (3+4)*2.
    Answer: <think>3+4=7. 7*2=14.</think> \\boxed{14}<|endoftext|>
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "shared" / "src" / "rlcore" / "assets"
MODEL_DIR = ASSETS / "models" / "tiny-reasoner"
DATA_DIR = ASSETS / "data" / "arithmetic"
METRICS_FILE = "training_metrics.json"

EOS = "<|endoftext|>"
THINK_TOKENS = ["<think>", "</think>"]
# Tolerances (absolute accuracy) used by --evaluate / --check and tests/test_tiny_reasoner.py.
EVAL_TOLERANCE = 0.05  # re-evaluating the committed model (same seed; differs only by float/BLAS differences)
RETRAIN_TOLERANCE = 0.08  # re-training from scratch (a different BLAS can change the training trajectory)
# Chat template: a single user turn renders to exactly the raw prompt format below.
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}Question: {{ m['content'] }}\n"
    "{% elif m['role'] == 'assistant' %}Answer: <think>{{ m['content'] }}" + EOS + "\n"
    "{% else %}{{ raise_exception('tiny-reasoner only knows user and assistant turns, got ' + m['role']) }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}Answer: <think>{% endif %}"
)


# ----------------------------------------------------------------------------------------------------------------
# Prompt format (copied verbatim into the model card; rlcore.builtins exposes the same function)
# ----------------------------------------------------------------------------------------------------------------
def build_prompt(question: str) -> str:
    """The exact prompt tiny-reasoner was trained on; the model continues with reasoning, ``</think>`` and the box."""
    return f"Question: {question}\nAnswer: <think>"


# ----------------------------------------------------------------------------------------------------------------
# Synthetic problems
# ----------------------------------------------------------------------------------------------------------------
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
MAX_VALUE = 99  # every intermediate and final value stays in 0..99 (at most two digits)


def _operand_for(rng: random.Random, left: int) -> tuple[str, int]:
    """Pick an operator and a right operand (1..9) so that ``left op right`` stays within 0..MAX_VALUE."""
    while True:
        op = rng.choice("+-*")
        b = rng.randint(1, 9)
        r = OPS[op](left, b)
        if 0 <= r <= MAX_VALUE and not (op == "*" and b == 1):
            return op, b


def make_arithmetic(rng: random.Random, steps: int) -> dict:
    """A nested expression with ``steps`` operations, e.g. ``((3+4)*2)-5``; reasoning evaluates innermost first."""
    a = rng.randint(1, 9)
    expr, value, lines = str(a), a, []
    for i in range(steps):
        op, b = _operand_for(rng, value)
        new = OPS[op](value, b)
        lines.append(f"{value}{op}{b}={new}.")
        expr = f"({expr}){op}{b}" if i > 0 else f"{expr}{op}{b}"
        value = new
    return {"kind": "arithmetic", "steps": steps, "question": f"Compute {expr}.",
            "reasoning": " ".join(lines), "answer": str(value)}


def make_lookup(rng: random.Random, hops: int, distractors: int) -> dict:
    """A multi-hop variable chain in shuffled order with distractor definitions.

    Example: ``q=x+4. x=3. k=5. m=q*2. What is m?``; the reasoning first looks the chain up backwards from the
    asked variable to a number (``m=q*2. q=x+4. x=3.``), then computes forwards (``q=3+4=7. m=7*2=14.``).
    """
    names = rng.sample("abcdefghijklmnopqrstuvwxyz", hops + 1 + distractors)
    chain, extra = names[: hops + 1], names[hops + 1:]
    value = rng.randint(1, 9)
    defs = {chain[0]: f"{chain[0]}={value}"}
    forward = []
    for prev, cur in zip(chain, chain[1:], strict=False):
        op, b = _operand_for(rng, value)
        new = OPS[op](value, b)
        defs[cur] = f"{cur}={prev}{op}{b}"
        forward.append(f"{cur}={value}{op}{b}={new}.")
        value = new
    for d in extra:  # distractors: constants or derived from another distractor / a chain variable
        src = rng.choice(chain + [x for x in extra if x in defs])
        defs[d] = f"{d}={rng.randint(1, 9)}" if rng.random() < 0.5 else f"{d}={src}+{rng.randint(1, 9)}"
    order = list(defs)
    rng.shuffle(order)
    backward = " ".join(defs[v] + "." for v in reversed(chain))
    question = " ".join(defs[v] + "." for v in order) + f" What is {chain[-1]}?"
    return {"kind": "lookup", "steps": hops, "question": question,
            "reasoning": backward + " " + " ".join(forward), "answer": str(value)}


def make_problem(rng: random.Random) -> dict:
    """One problem: half arithmetic (1-3 operations), half look-up chains (1-3 hops, 0-2 distractors)."""
    if rng.random() < 0.5:
        return make_arithmetic(rng, steps=rng.randint(1, 3))
    return make_lookup(rng, hops=rng.randint(1, 3), distractors=rng.randint(0, 2))


def completion_text(p: dict) -> str:
    """The target continuation of :func:`build_prompt` (without the eos token)."""
    return f"{p['reasoning']}</think> \\boxed{{{p['answer']}}}"


def make_split(seed: int, n: int, exclude: set[str] = frozenset()) -> list[dict]:
    """``n`` distinct problems from ``seed``, skipping questions in ``exclude`` (keeps held-out data unseen)."""
    rng, seen, out = random.Random(seed), set(exclude), []
    while len(out) < n:
        p = make_problem(rng)
        if p["question"] not in seen:
            seen.add(p["question"])
            out.append(p)
    return out


def as_record(p: dict) -> dict:
    """The committed JSONL row: {prompt, question, answer} plus kind/steps and the reference completion."""
    return {"prompt": build_prompt(p["question"]), "question": p["question"], "answer": p["answer"],
            "kind": p["kind"], "steps": p["steps"], "completion": completion_text(p)}


# ----------------------------------------------------------------------------------------------------------------
# Tokenizer and model
# ----------------------------------------------------------------------------------------------------------------
def train_tokenizer(texts: list[str], vocab_size: int):
    """Byte-level BPE with single-digit tokens (digits never merge, as in Qwen2) and ``<think>`` as whole tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(texts, trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS, pad_token=EOS, padding_side="left")
    tok.add_tokens(THINK_TOKENS)
    tok.chat_template = CHAT_TEMPLATE
    return tok


def make_model(tok, args):
    """A Qwen2-style causal LM sized by ``args`` (vocabulary padded to a multiple of 64)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(
        vocab_size=64 * math.ceil(len(tok) / 64), hidden_size=args.hidden_size,
        intermediate_size=4 * args.hidden_size, num_hidden_layers=args.layers,
        num_attention_heads=args.heads, num_key_value_heads=args.heads, max_position_embeddings=256,
        tie_word_embeddings=True, bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(args.seed)
    return Qwen2ForCausalLM(cfg)


def encode_batch(tok, problems: list[dict]):
    """Right-padded (input_ids, attention_mask, labels); labels are -100 on the prompt and the padding."""
    import torch

    seqs, labels = [], []
    for p in problems:
        prompt = tok(build_prompt(p["question"]), add_special_tokens=False)["input_ids"]
        target = tok(completion_text(p), add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        seqs.append(prompt + target)
        labels.append([-100] * len(prompt) + target)
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), tok.pad_token_id)
    lab = torch.full((len(seqs), width), -100)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (s, lb) in enumerate(zip(seqs, labels, strict=True)):
        ids[i, : len(s)], lab[i, : len(s)], mask[i, : len(s)] = torch.tensor(s), torch.tensor(lb), 1
    return ids, mask, lab


def lr_at(step: int, args) -> float:
    """Linear warm-up over ``args.warmup`` steps, then constant.

    The schedule does not depend on ``args.steps``, so the checkpoint after k steps of a longer run is exactly the
    model that ``--steps k`` trains: one run scans the training length.
    """
    return args.lr * min(1.0, (step + 1) / args.warmup)


def train(tok, args, log=print, on_checkpoint=None):
    """Plain AdamW loop on an endless seeded stream of fresh problems (held-out questions excluded)."""
    import torch

    model = make_model(tok, args).train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    held_out = {p["question"] for p in make_split(args.seed + 1, args.n_test)}
    rng, losses, t0 = random.Random(args.seed + 2), [], time.time()
    for step in range(args.steps):
        batch = []
        while len(batch) < args.batch_size:
            p = make_problem(rng)
            if p["question"] not in held_out:
                batch.append(p)
        ids, mask, lab = encode_batch(tok, batch)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args)
        loss = model(input_ids=ids, attention_mask=mask, labels=lab).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if (step + 1) % args.log_every == 0 or step == args.steps - 1:
            recent = losses[-args.log_every:]
            log(f"step {step + 1}/{args.steps}  loss {sum(recent) / len(recent):.4f}  {time.time() - t0:.0f}s")
        if on_checkpoint is not None and args.save_every and (step + 1) % args.save_every == 0:
            on_checkpoint(step + 1, model.eval(), losses)
            model.train()
    return model.eval(), losses


# ----------------------------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------------------------
def evaluate(model, tok, problems: list[dict], temperature: float, seed: int, batch_size: int = 250,
             max_new_tokens: int = 96) -> dict:
    r"""Accuracy of the last ``\boxed{}`` after ``</think>`` vs the answer; ``temperature=0`` means greedy."""
    import torch
    from rlcore.rewards import extract_boxed

    tok.padding_side = "left"
    correct, by_kind = [], {}
    torch.manual_seed(seed)
    for i in range(0, len(problems), batch_size):
        chunk = problems[i: i + batch_size]
        enc = tok([build_prompt(p["question"]) for p in chunk], return_tensors="pt", padding=True,
                  add_special_tokens=False)
        sampling = dict(do_sample=True, temperature=temperature, top_k=0, top_p=1.0) if temperature > 0 \
            else dict(do_sample=False)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                                 eos_token_id=tok.eos_token_id, **sampling)
        texts = tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        for p, text in zip(chunk, texts, strict=True):
            ok = extract_boxed(text, after="</think>") == p["answer"] and "</think>" in text
            correct.append(ok)
            by_kind.setdefault(f"{p['kind']}-{p['steps']}", []).append(ok)
    return {"accuracy": sum(correct) / len(correct), "n": len(correct),
            "by_kind": {k: round(sum(v) / len(v), 3) for k, v in sorted(by_kind.items())}}


DECODINGS = {"temperature_1": 1.0, "temperature_0.5": 0.5, "greedy": 0.0}


def evaluate_all(model, tok, problems: list[dict], seed: int, decodings=tuple(DECODINGS)) -> dict:
    """Held-out accuracy for each decoding in ``decodings`` (default: temperature 1, 0.5 and greedy)."""
    return {k: evaluate(model, tok, problems, DECODINGS[k], seed) for k in decodings}


# ----------------------------------------------------------------------------------------------------------------
# Outputs: model, data, model card
# ----------------------------------------------------------------------------------------------------------------
def write_data(train_problems: list[dict], test_problems: list[dict]) -> None:
    from rlcore.io import write_jsonl

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    write_jsonl(DATA_DIR / "train.jsonl", [as_record(p) for p in train_problems])
    write_jsonl(DATA_DIR / "test.jsonl", [as_record(p) for p in test_problems])


def model_card(metrics: dict) -> str:
    import inspect

    m, a = metrics, metrics["args"]
    ev = m["eval"]
    ckpt = (f"- The weights are the step-{a['steps']} checkpoint of a longer run with identical settings "
            f"(`--save-every`); the learning-rate schedule ignores the total, so they are exactly what "
            f"`--steps {a['steps']}` trains.\n") if m.get("from_checkpoint") else ""
    if m.get("train_state_note"):
        ckpt += f"- Loss and time figures: {m['train_state_note']}.\n"
    rows = "\n".join(f"| {k} | {ev['temperature_1']['by_kind'][k]:.3f} | {ev['greedy']['by_kind'][k]:.3f} |"
                     for k in ev["greedy"]["by_kind"])
    return f"""# tiny-reasoner (built-in: `builtin:tiny-reasoner`)

A {m['n_params'] / 1e6:.2f}M-parameter Qwen2-style causal LM trained from scratch by `tools/train_tiny_reasoner.py`
on synthetic problems: multi-step arithmetic (`Compute ((3+4)*2)-5.`) and multi-hop variable look-ups with
distractors (`q=x+4. x=3. k=5. m=q*2. What is m?`). It reasons inside `<think>...</think>` and answers with
`\\boxed{{answer}}`. It is a *real but imperfect* model of its task: sampling at temperature 1 solves part of the
held-out problems, greedy decoding more, so better sampling and RL have something to improve.

Load it offline: `rlcore.builtins.load_model_and_tokenizer("builtin:tiny-reasoner")`.

## Prompt format

Raw text, no chat markup. The exact prompt-building function (no rlcore needed):

```python
{inspect.getsource(build_prompt).strip()}
```

The model continues with its reasoning, `</think> \\boxed{{N}}` and the eos token `<|endoftext|>` (also the pad
token). Score with the content of the last `\\boxed{{}}` after `</think>` compared, as a string, with the integer
answer. The tokenizer's chat template renders one user turn to exactly the same text
(`Question: <content>\\nAnswer: <think>` with `add_generation_prompt=True`). Example:

```text
{build_prompt('Compute (3+4)*2.')}3+4=7. 7*2=14.</think> \\boxed{{14}}<|endoftext|>
```

## Held-out accuracy ({ev['greedy']['n']} problems, `builtin:arithmetic` test split)

| decoding | accuracy |
|---|---|
| sampling, temperature 1 (top-k 0, top-p 1) | {ev['temperature_1']['accuracy']:.3f} |
| sampling, temperature 0.5 | {ev['temperature_0.5']['accuracy']:.3f} |
| greedy | {ev['greedy']['accuracy']:.3f} |

Per kind and number of steps (`kind-steps`):

| kind | temperature 1 | greedy |
|---|---|---|
{rows}

Sampling seed {m['eval_seed']}, `max_new_tokens=96`. `--evaluate` reproduces these within ±{EVAL_TOLERANCE}
(re-evaluation) and `--check` within ±{RETRAIN_TOLERANCE} (full re-training); the slow test
`tests/test_tiny_reasoner.py` runs the re-evaluation.

## Training

- Seed {a['seed']}; data: an endless seeded stream of fresh problems (held-out questions excluded), half arithmetic
  with 1-3 operations, half look-up chains with 1-3 hops and 0-2 distractors; operands 1-9, every value in 0..99.
- Tokenizer: byte-level BPE, vocabulary {m['vocab_size']} (digits split one per token; `<think>`, `</think>` added).
- Model: hidden {a['hidden_size']}, {a['layers']} layers, {a['heads']} heads, MLP {4 * a['hidden_size']}, tied
  embeddings, fp32 safetensors ({m['n_params']:,} parameters).
- Optimiser: AdamW (lr {a['lr']}, betas 0.9/0.98, weight decay 0.01), {a['steps']} steps of {a['batch_size']}
  problems, {a['warmup']} warm-up steps then constant; loss on the completion only. Final loss {m['final_loss']:.4f}.
{ckpt}- Time: {m['train_cpu_seconds'] / 60:.1f} CPU-minutes of training ({m['threads']} torch thread(s), {m['machine']});
  {m['train_seconds'] / 60:.1f} min wall-clock on a 2-core machine shared with other jobs.

Reproduce: `uv run --no-sync python tools/train_tiny_reasoner.py` (writes this folder and
`assets/data/arithmetic/`); check: `--check`.
"""


def save_all(model, tok, metrics: dict, out_dir: Path) -> None:
    from transformers import GenerationConfig

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    tok.save_pretrained(str(out_dir))
    GenerationConfig(bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                     do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=96
                     ).save_pretrained(str(out_dir))
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    (out_dir / "README.md").write_text(model_card(metrics))


# ----------------------------------------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------------------------------------
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--hidden-size", type=int, default=96)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--vocab-size", type=int, default=320)
    ap.add_argument("--n-test", type=int, default=500)
    ap.add_argument("--n-train-file", type=int, default=2000, help="problems written to train.jsonl")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 avoids OpenMP spin-waits when the cores are shared with other jobs)")
    ap.add_argument("--save-every", type=int, default=0, help="also save checkpoints to --ckpt-dir every N steps")
    ap.add_argument("--ckpt-dir", type=Path, default=None)
    ap.add_argument("--from-checkpoint", type=Path, default=None,
                    help="skip training: take the step---steps checkpoint of a longer run with the same settings "
                         "(identical to training --steps steps, as the schedule ignores the total)")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--out", type=Path, default=MODEL_DIR, help="model directory to write")
    ap.add_argument("--model-dir", type=Path, default=MODEL_DIR, help="model directory that --evaluate reads")
    ap.add_argument("--no-write-data", action="store_true", help="do not (re)write assets/data/arithmetic")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--evaluate", action="store_true", help="re-evaluate the committed model against its card")
    mode.add_argument("--check", action="store_true", help="re-train in a temp dir and compare with the card")
    return ap.parse_args(argv)


def load_test_problems() -> list[dict]:
    from rlcore.io import read_jsonl

    return read_jsonl(DATA_DIR / "test.jsonl", required=("prompt", "question", "answer", "kind", "steps"))


def compare(recorded: dict, got: dict, tol: float) -> list[str]:
    """Lines describing |got - recorded| per decoding; a line starting with FAIL exceeds ``tol``."""
    lines = []
    for k in ("temperature_1", "greedy"):
        if k not in got:
            continue
        r, g = recorded[k]["accuracy"], got[k]["accuracy"]
        lines.append(f"{'ok  ' if abs(g - r) <= tol else 'FAIL'} {k}: recorded {r:.3f}, now {g:.3f} (tolerance ±{tol})")
    return lines


def load_checkpoint(path: Path, tok, steps: int):
    """(model, train_state) of a ``--save-every`` checkpoint, checked against ``--steps`` and the tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    state_file = path / "train_state.json"
    if not state_file.exists():
        raise FileNotFoundError(f"--from-checkpoint: {state_file} is missing (not a --save-every checkpoint)")
    st = json.loads(state_file.read_text())
    if st["step"] != steps:
        raise ValueError(f"--from-checkpoint: {path} is step {st['step']}, but --steps is {steps}")
    if AutoTokenizer.from_pretrained(str(path)).get_vocab() != tok.get_vocab():
        raise ValueError(f"--from-checkpoint: the tokenizer in {path} differs from the one this seed trains")
    return AutoModelForCausalLM.from_pretrained(str(path)).eval(), st


def reevaluate(model_dir: Path = MODEL_DIR, eval_seed: int | None = None,
               decodings=tuple(DECODINGS)) -> tuple[dict | None, dict]:
    """(recorded or None, re-computed) held-out metrics of the model in ``model_dir``."""
    from rlcore.builtins import load_model_and_tokenizer

    metrics_path = model_dir / METRICS_FILE
    recorded = json.loads(metrics_path.read_text()) if metrics_path.exists() else None
    seed = recorded["eval_seed"] if recorded else eval_seed
    model, tok = load_model_and_tokenizer(str(model_dir), device="cpu")
    return (recorded or {}).get("eval"), evaluate_all(model, tok, load_test_problems(), seed, decodings)


def main(argv=None) -> int:
    import platform

    import torch

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.evaluate:
        recorded, got = reevaluate(args.model_dir, eval_seed=args.seed + 5)
        for k, v in got.items():
            print(f"held-out accuracy ({k}): {v['accuracy']:.3f}  {v['by_kind']}")
        if recorded is None:
            print(f"no {METRICS_FILE} in {args.model_dir}: nothing to compare with")
            return 0
        lines = compare(recorded, got, EVAL_TOLERANCE)
        print("\n".join(lines))
        return 1 if any(ln.startswith("FAIL") for ln in lines) else 0

    test = make_split(args.seed + 1, args.n_test)
    train_file = make_split(args.seed + 3, args.n_train_file, exclude={p["question"] for p in test})
    corpus = [build_prompt(p["question"]) + completion_text(p) for p in make_split(args.seed + 4, 3000)]
    tok = train_tokenizer(corpus, args.vocab_size)
    if not (args.no_write_data or args.check):
        write_data(train_file, test)
    print(f"tokenizer: {len(tok)} tokens; example ids: {tok(build_prompt('Compute (3+4)*2.'))['input_ids']}")
    t0 = time.time()
    c0 = time.process_time()

    def state(step, losses):  # training figures recorded with a checkpoint and in the model card
        return {"step": step, "final_loss": sum(losses[-50:]) / len(losses[-50:]),
                "train_seconds": round(time.time() - t0, 1), "train_cpu_seconds": round(time.process_time() - c0, 1)}

    def on_checkpoint(step, m, losses):
        d = args.ckpt_dir / f"step_{step}"
        m.save_pretrained(str(d))
        tok.save_pretrained(str(d))
        (d / "train_state.json").write_text(json.dumps(state(step, losses), indent=2) + "\n")
        print(f"checkpoint {d}")

    if args.from_checkpoint is not None:
        model, st = load_checkpoint(args.from_checkpoint, tok, args.steps)
    else:
        model, losses = train(tok, args, on_checkpoint=on_checkpoint if args.ckpt_dir else None)
        st = state(args.steps, losses)
    eval_seed = args.seed + 5
    ev = evaluate_all(model, tok, test, eval_seed)
    for k, v in ev.items():
        print(f"held-out accuracy ({k}): {v['accuracy']:.3f}  {v['by_kind']}")
    metrics = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "n_params": sum(p.numel() for p in model.parameters()), "vocab_size": len(tok),
               "final_loss": st["final_loss"], "train_seconds": st["train_seconds"],
               "train_cpu_seconds": st["train_cpu_seconds"], "from_checkpoint": args.from_checkpoint is not None,
               "train_state_note": st.get("note"),
               "threads": args.threads, "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
               "torch": torch.__version__, "eval_seed": eval_seed, "eval": ev}
    if args.check:
        recorded = json.loads((MODEL_DIR / METRICS_FILE).read_text())["eval"]
        lines = compare(recorded, ev, RETRAIN_TOLERANCE)
        print("\n".join(lines))
        with tempfile.TemporaryDirectory() as d:  # also prove the re-trained model saves and reloads
            save_all(model, tok, metrics, Path(d))
        return 1 if any(ln.startswith("FAIL") for ln in lines) else 0
    save_all(model, tok, metrics, args.out)
    print(f"wrote {args.out} ({st['train_seconds'] / 60:.1f} min of training)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
