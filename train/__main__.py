"""``python -m train``: the command line in ``train/cli.py``."""

from train.cli import main

if __name__ == "__main__":
    main()
