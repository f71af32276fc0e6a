"""Old path of ``l3ic.datasets.shard_convert`` (until l3ic 0.20): importing it warns."""

from ._moved import moved

moved(__name__, "l3ic.shard_convert", "l3ic.datasets.shard_convert")
