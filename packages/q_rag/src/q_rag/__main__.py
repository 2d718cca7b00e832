"""``python -m q_rag``."""

from .cli import app

if __name__ == "__main__":
    app()
