"""Old path of ``l3ic.training.loop`` (until l3ic 0.20): importing it warns."""

from ._moved import moved

moved(__name__, "l3ic.train", "l3ic.training.loop", main="l3ic.training")
