"""``python -m p_genrm ...`` (and so ``accelerate launch -m p_genrm train ...``)."""

from .cli import main

if __name__ == "__main__":
    main()
