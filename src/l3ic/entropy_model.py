"""Old path of ``l3ic.training.entropy_model`` (until l3ic 0.20): importing it warns."""

from ._moved import moved

moved(__name__, "l3ic.entropy_model", "l3ic.training.entropy_model")
