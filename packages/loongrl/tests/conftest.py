import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models on a shared 2-core box: extra intra-op threads only thrash (a 750-token forward took 3 s with the
    default thread count under load vs 0.2 s with one). Restored afterwards so other packages are unaffected."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
