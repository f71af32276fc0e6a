"""Training the presets: ``l3ic train`` and its subcommands (docs/training.md).

- ``data``: the training images, their split and the patch sampler;
- ``rules``: what both training loops follow: schedule, rate steering, divergence, the log;
- ``recipe``: the recipe (one object for both parsers) and the machine's bf16 choice;
- ``loop``: the training loop of ``l3ic train`` (checkpoints, exact resume, validation);
- ``entropy_model``: fitting the priors, channel order and context tables of a trained network;
- ``export``: a run -> a candidate preset, and the ship rule;
- ``gpu_run``: the one-shot GPU run (the same pieces in one jitted JAX step);
- ``cli``: the command-line front ends (``l3ic train ...``, ``python -m l3ic.evaluate``).

``python -m l3ic.training ...`` is ``l3ic train ...``.
"""
