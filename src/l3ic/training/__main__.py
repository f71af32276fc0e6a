"""``python -m l3ic.training ...``: the same as ``l3ic train ...``."""

import sys

from .cli import train_main

sys.exit(train_main(sys.argv[1:]))
