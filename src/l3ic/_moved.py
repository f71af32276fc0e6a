"""The import paths of modules that moved into ``l3ic.datasets`` and ``l3ic.training`` in
l3ic 0.19.0. Each old path still works until 0.20: importing it warns (``DeprecationWarning``,
pointed at the importing line) and gives the new module itself, so ``from l3ic.data import
ShardBatches`` and ``python -m l3ic.train ...`` go on working.
"""

import importlib
import runpy
import sys

from .deprecation import warn_deprecated

__all__ = ["moved"]


def moved(name: str, old: str, new: str, main: str | None = None) -> None:
    """Makes the module being imported as ``name`` (the old path ``old``) the module ``new``,
    with a warning; run with ``python -m`` (``name`` is ``"__main__"``), runs ``main``."""
    if name == "__main__":
        if main is not None:
            print(
                f"l3ic: warning: python -m {old} is deprecated: use python -m {main}",
                file=sys.stderr,
            )
            runpy.run_module(main, run_name="__main__", alter_sys=True)
        return
    warn_deprecated(old, new)
    sys.modules[name] = importlib.import_module(new)
