"""Old path of ``l3ic.training.gpu_run`` (until l3ic 0.20): importing it warns."""

from ._moved import moved

moved(__name__, "l3ic.gpu_run", "l3ic.training.gpu_run")
