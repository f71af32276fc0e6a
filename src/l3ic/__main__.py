"""``python -m l3ic`` is the ``l3ic`` command."""

import sys

from .cli import main

sys.exit(main())
