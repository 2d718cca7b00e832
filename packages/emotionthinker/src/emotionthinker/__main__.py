"""``python -m emotionthinker ...`` (and so ``accelerate launch -m emotionthinker train ...``)."""

from .cli import app

if __name__ == "__main__":
    app()
