import pytest
import torch


@pytest.fixture(scope="session")
def tiny_qf_factory():
    from q_rag.q_function import QFunction
    from rlcore.testing import tiny_encoder

    def make(position="relative", hidden=32, seed=0):
        torch.manual_seed(seed)
        enc, tok = tiny_encoder(seed=seed, hidden_size=hidden)
        return QFunction.from_encoder(enc, tok, position=position, max_state_tokens=24, max_action_tokens=24)

    return make
