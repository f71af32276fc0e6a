"""Old path of ``l3ic.datasets.keras_data`` (until l3ic 0.20): importing it warns."""

from ._moved import moved

moved(__name__, "l3ic.data", "l3ic.datasets.keras_data")
