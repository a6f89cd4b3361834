"""``python -m train``: see train/train.py. Bad input gets one line on stderr (train/cli.py)."""

import sys

from .cli import check_data_option, quiet_tensorflow, run_cli


def main(argv):
    check_data_option(argv)
    quiet_tensorflow()  # before train.train, which imports Keras
    from .train import main as train

    return train(argv)


sys.exit(run_cli("python -m train", main))
