"""``python -m power_sampling ...`` runs the ``power-sampling`` CLI."""

from .cli import app

if __name__ == "__main__":
    app()
