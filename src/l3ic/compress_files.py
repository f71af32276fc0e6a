"""Old path of ``l3ic.datasets.compress_files`` (until l3ic 0.20): importing it warns."""

from ._moved import moved

moved(__name__, "l3ic.compress_files", "l3ic.datasets.compress_files")
