"""``python -m ti_dpo``: the ti-dpo CLI."""

from .cli import main

if __name__ == "__main__":
    main()
