"""Datasets of latents: conversion of image folders to .l3ic files or tar shards, and loaders.

- ``compress_files``: image files compressed in batches, each failing alone;
- ``pool``: the process pool both conversions run their tasks in;
- ``convert``: a folder of images -> a folder of .l3ic files with ``index.json``;
- ``shards``: the tar shard format (WebDataset-style members, a per-shard index) and its writer;
- ``shard_convert``: a folder of images -> tar shards, a task per shard, here or on Dask;
- ``folder_index``: the ``index.json`` of a converted folder, and its reader;
- ``latent_files``: ``LatentFiles``, a converted folder read by index;
- ``latent_shards``: ``LatentShards``, shards streamed (split across ranks and workers);
- ``pixels``: latents back to pixels, for the loaders that decode;
- ``torch_data``, ``keras_data``: the loaders for PyTorch, and for Keras and ``tf.data``.

Nothing is imported here: each module loads what it needs (``keras_data`` needs Keras,
``torch_data`` PyTorch), so the command line reads ``ENGINES`` without loading a converter.
"""

__all__ = ["ENGINES"]

ENGINES = ("local", "dask")  # where ``shard_convert`` runs its tasks: here, or on a Dask cluster
