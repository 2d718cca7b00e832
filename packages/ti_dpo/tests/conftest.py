import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models are latency-bound: one intra-op thread avoids oversubscribing the shared 2-core machine
    (measured 8x faster forwards under load). Restored after each test so other packages are unaffected."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def common_args():
    """TIDPOConfig / DPOConfig kwargs of the trainer tests: CPU, fp32, batch 4, 64 tokens, no saving."""
    return dict(use_cpu=True, bf16=False, report_to="none", per_device_train_batch_size=4, save_strategy="no",
                activation_checkpointing=False, max_length=64, logging_steps=1, seed=0, dataset_num_proc=None)


@pytest.fixture
def tok():
    """rlcore's tiny tokenizer (cached per process: every call is the same object)."""
    from rlcore.testing import tiny_tokenizer

    return tiny_tokenizer()


@pytest.fixture
def lm(tok):
    """``lm(seed)``: a fresh tiny random-init causal LM; the same seed gives the same weights."""
    from rlcore.testing import tiny_causal_lm

    return lambda seed: tiny_causal_lm(tok, seed=seed)


_LM1 = object()  # make_trainer's default reference: a fresh lm(1)


@pytest.fixture
def make_trainer(tok, lm, common_args):
    """``make_trainer(output_dir, ds=None, *, model=None, ref_model=lm(1), **config)``: a TIDPOTrainer.

    ``ds`` defaults to the first 4 tiny pairs, ``model`` to a fresh lm(0), ``ref_model`` to a fresh lm(1)
    (``None``: no reference model); the config is common_args, anchor_max_new_tokens=6, then ``config``.
    """
    from ti_dpo.data import load_preference_pairs
    from ti_dpo.trainer import TIDPOConfig, TIDPOTrainer

    def make(output_dir, ds=None, *, model=None, ref_model=_LM1, **config):
        return TIDPOTrainer(
            model=model if model is not None else lm(0), ref_model=lm(1) if ref_model is _LM1 else ref_model,
            processing_class=tok,
            train_dataset=ds if ds is not None else load_preference_pairs("tiny").select(range(4)),
            args=TIDPOConfig(output_dir=str(output_dir),
                             **{**common_args, "anchor_max_new_tokens": 6, **config}))

    return make
