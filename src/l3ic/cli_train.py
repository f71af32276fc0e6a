"""Old path of ``l3ic.training.cli`` (until l3ic 0.20): importing it warns."""

from ._moved import moved

moved(__name__, "l3ic.cli_train", "l3ic.training.cli")
