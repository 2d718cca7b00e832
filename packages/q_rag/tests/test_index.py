import os
import time

import numpy as np
import pytest
import torch
from q_rag.index import ChunkIndex, brute_force_scores, encode_chunks, evict_cache, fp16_accumulates_in_fp32
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
@pytest.mark.parametrize("backend", ["faiss", "numpy", "fp16"])
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


def test_fp16_exact_on_near_ties():
    # many candidates whose scores differ by less than the fp16 rounding error: the re-rank must still return
    # the exact fp32 order (a plain fp16 top-k would not)
    g = np.random.default_rng(3)
    n, d = 5000, 64
    base = g.normal(size=d).astype(np.float32)
    emb = (base + 1e-4 * g.normal(size=(n, d))).astype(np.float32)
    state = g.normal(size=d).astype(np.float32)
    index = ChunkIndex(emb, position="relative", backend="fp16")
    for retrieved in ([], [10, 4000]):
        s, ids = index.search(state, retrieved, k=5)
        bs, bids = _brute_topk(emb, state, "relative", retrieved, 5)
        assert ids.tolist() == bids.tolist()
    approx = (torch.from_numpy(emb).half() @ torch.from_numpy(state).half()).float().numpy()
    assert np.argsort(-approx, kind="stable")[:5].tolist() != _brute_topk(emb, state, "none", [], 5)[1].tolist()


def test_fp16_accumulation_probe_and_bound():
    assert fp16_accumulates_in_fp32()  # torch CPU half mv sums in fp32 (else the bound widens by d*u)
    g = np.random.default_rng(0)
    emb = g.normal(size=(2000, 32)).astype(np.float32)
    index = ChunkIndex(emb, position="none", backend="fp16")
    state = g.normal(size=32).astype(np.float32)
    exact = emb @ state
    approx = (torch.from_numpy(emb).half() @ torch.from_numpy(state).half()).float().numpy()
    assert np.abs(approx - exact).max() <= index.error_bound(state)
    with pytest.raises(ValueError, match="overflow float16"):
        ChunkIndex(np.full((10, 8), 1e6, np.float32), backend="fp16")


def test_cache_lru_eviction(tmp_path):
    sizes = {}
    for i, name in enumerate(["a", "b", "c"]):
        np.save(tmp_path / f"{name}.npy", np.zeros((256, 64), np.float32))  # 65,664 bytes each
        t = time.time() - 100 + i
        os.utime(tmp_path / f"{name}.npy", (t, t))
        sizes[name] = (tmp_path / f"{name}.npy").stat().st_size
    (tmp_path / "x.tmp123.npy").write_bytes(b"0" * 10)  # another process' unfinished write: left alone
    os.utime(tmp_path / "a.npy")  # "a" used just now -> most recent
    removed = evict_cache(tmp_path, 2 * sizes["a"], keep=[tmp_path / "c.npy"])
    assert [p.name for p in removed] == ["b.npy"]
    removed = evict_cache(tmp_path, sizes["a"] - 1, keep=[tmp_path / "c.npy"])
    assert [p.name for p in removed] == ["a.npy"]  # "c" is kept even over the cap
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npy", "x.tmp123.npy"]


def test_encode_cache_cap_and_refresh(tmp_path, tiny_qf_factory):
    qf = tiny_qf_factory()
    docs = [[f"doc {j} sentence {i}." for i in range(40)] for j in range(3)]
    one = 40 * qf.dim * 4 + 128  # one entry: header + float32 rows
    encode_chunks(qf, docs[0], cache_dir=tmp_path, cache_max_gb=2.5 * one / 2**30)
    time.sleep(0.02)
    encode_chunks(qf, docs[1], cache_dir=tmp_path, cache_max_gb=2.5 * one / 2**30)
    time.sleep(0.02)
    encode_chunks(qf, docs[0], cache_dir=tmp_path)  # a hit refreshes doc 0's LRU time
    time.sleep(0.02)
    encode_chunks(qf, docs[2], cache_dir=tmp_path, cache_max_gb=2.5 * one / 2**30)  # evicts doc 1, not doc 0
    assert len(list(tmp_path.glob("*.npy"))) == 2
    n_files = len(list(tmp_path.glob("*.npy")))
    encode_chunks(qf, docs[0], cache_dir=tmp_path)  # still cached: no new file
    assert len(list(tmp_path.glob("*.npy"))) == n_files
    encode_chunks(qf, docs[1], cache_dir=tmp_path)  # was evicted: re-encoded
    assert len(list(tmp_path.glob("*.npy"))) == 3


def test_encode_sorted_batches_and_workers_match_direct(tiny_qf_factory):
    qf = tiny_qf_factory()
    chunks = [("word " * (1 + (7 * i) % 13)) + f"end {i}." for i in range(50)]  # varied lengths
    with torch.no_grad():
        direct = np.concatenate([qf.embed_actions([c]).numpy() for c in chunks])
    for workers in (1, 2):
        got = encode_chunks(qf, chunks, batch_size=4, workers=workers)
        assert np.allclose(got, direct, atol=1e-5), workers
    with pytest.raises(ValueError, match="workers"):
        encode_chunks(qf, chunks, workers=0)
