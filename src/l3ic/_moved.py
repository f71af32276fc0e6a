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


def _importer_level() -> int:
    """The ``stacklevel``, counted from ``moved``, of the first calling frame outside l3ic and the
    import machinery (``warnings.warn`` passes over the import machinery's frames itself)."""
    level, frame = 2, sys._getframe(2)
    while frame is not None and (
        frame.f_code.co_filename.startswith("<frozen importlib")
        or str(frame.f_globals.get("__name__", "")).startswith("l3ic")
    ):
        if not frame.f_code.co_filename.startswith("<frozen importlib"):
            level += 1
        frame = frame.f_back
    return level


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
    warn_deprecated(old, new, stacklevel=_importer_level() + 1)  # + 1: warn_deprecated's frame
    sys.modules[name] = importlib.import_module(new)
