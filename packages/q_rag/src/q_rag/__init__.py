"""Q-RAG: multi-step retrieval by value-based embedder training (ICLR 2026; arXiv 2511.07328).

Re-exports are lazy so that ``q-rag --help`` does not import torch.
"""

import importlib

_EXPORTS = {
    "TrainConfig": "config", "DataConfig": "config", "IndexConfig": "config", "RetrieveConfig": "config",
    "EvalConfig": "config", "Sample": "data", "get_loader": "data", "read_samples": "data",
    "write_samples": "data", "build_synthetic_dataset": "babilong", "ChunkIndex": "index",
    "encode_chunks": "index", "compute_lambda_returns": "lambda_return",
    "compute_relative_positions": "positions", "get_position_processor": "positions", "PQNTrainer": "pqn",
    "QFunction": "q_function", "evaluate_retrieval": "retriever", "retrieve": "retriever",
    "support_fact_metrics": "retriever", "compute_terminal_reward": "reward", "compute_rope": "rope",
    "compute_q_loss": "soft_q", "compute_soft_value": "soft_q", "compute_twin_q": "soft_q",
    "load_q_function": "train", "run_training": "train",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'q_rag' has no attribute {name!r}")
