import numpy as np
import pytest
import torch
from q_rag.index import ChunkIndex, brute_force_scores, encode_chunks
from q_rag.positions import get_position_processor


def _brute_topk(emb, state, position, retrieved, k):
    n = len(emb)
    avail = np.ones(n, bool)
    avail[list(retrieved)] = False
    pos = get_position_processor(position)(n, retrieved)
    sc = brute_force_scores(emb, state, pos, avail)
    order = np.argsort(-sc, kind="stable")[:k]
    return sc[order], order


@pytest.mark.parametrize("position", ["relative", "absolute", "none"])
@pytest.mark.parametrize("backend", ["faiss", "numpy"])
@pytest.mark.parametrize("seed", [0, 1])
def test_exact_against_brute_force(position, backend, seed):
    g = np.random.default_rng(seed)
    n, d = 3000, 16
    emb = g.normal(size=(n, d)).astype(np.float32)
    index = ChunkIndex(emb, position=position, backend=backend, block=700)
    retrieved: list[int] = []
    for _ in range(5):  # a 5-step episode: positions change after every step
        state = g.normal(size=d).astype(np.float32)
        s, ids = index.search(state, retrieved, k=4)
        bs, bids = _brute_topk(emb, state, position, retrieved, 4)
        assert ids.tolist() == bids.tolist()
        assert s == pytest.approx(bs, rel=1e-4, abs=1e-4)
        retrieved.append(int(ids[0]))


def test_errors():
    emb = np.zeros((4, 8), np.float32)
    idx = ChunkIndex(emb, backend="numpy")
    with pytest.raises(ValueError, match="no chunk left"):
        idx.search(np.zeros(8), [0, 1, 2, 3])
    with pytest.raises(ValueError, match="dim"):
        idx.search(np.zeros(4), [])
    with pytest.raises(ValueError, match="max_index_gb"):
        ChunkIndex(np.zeros((1000, 8), np.float32), backend="faiss", max_index_gb=1e-6)
    with pytest.raises(ValueError, match="non-empty"):
        ChunkIndex(np.zeros((0, 8), np.float32))


def test_encode_cache_and_limits(tmp_path, tiny_qf_factory):
    qf = tiny_qf_factory()
    chunks = [f"Mary went to the kitchen {i}." for i in range(10)]
    a = encode_chunks(qf, chunks, cache_dir=tmp_path, batch_size=3)
    files = list(tmp_path.glob("*.npy"))
    assert len(files) == 1 and isinstance(a, np.memmap)
    b = encode_chunks(qf, chunks, cache_dir=tmp_path)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    with torch.no_grad():
        direct = qf.embed_actions(chunks).numpy()
    assert np.allclose(np.asarray(a), direct, atol=1e-5)
    with pytest.raises(ValueError, match="max_chunks"):
        encode_chunks(qf, chunks, max_chunks=5)
    with pytest.raises(ValueError, match="no chunks"):
        encode_chunks(qf, [])
