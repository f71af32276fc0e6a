"""Old path of ``l3ic.datasets.shards`` (until l3ic 0.20): importing it warns."""

from ._moved import moved

moved(__name__, "l3ic.shards", "l3ic.datasets.shards")
