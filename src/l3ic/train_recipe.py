"""Old path of ``l3ic.training.recipe`` (until l3ic 0.20): importing it warns."""

from ._moved import moved

moved(__name__, "l3ic.train_recipe", "l3ic.training.recipe")
