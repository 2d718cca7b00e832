"""``python -m longwriter_zero`` (and so ``accelerate launch -m longwriter_zero train ...``)."""

from .cli import main

if __name__ == "__main__":
    main()
