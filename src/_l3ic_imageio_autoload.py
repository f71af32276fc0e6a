"""Registers the l3ic imageio plugin as soon as imageio is imported, in any program.

The wheel installs this file as the top-level module ``_l3ic_imageio_autoload`` (beside the
``l3ic`` package, which imports ``register`` from it) and ``l3ic-imageio.pth`` imports it at
start-up. It costs one finder object and imports nothing at start-up (not even
``importlib.abc``, which would pull in importlib.resources, pathlib and tempfile: about 16 ms):
nothing of importlib.util, imageio or l3ic is imported until a program imports imageio itself,
at which point ``register()`` runs once.
"""

import sys

_TARGET = "imageio.config"


class _AfterImport:
    """A meta path finder (``find_spec`` is all the import system asks of one) that wraps the
    loader of ``imageio.config`` so that registration follows its execution."""

    def find_spec(self, name, path, target=None):
        if name != _TARGET:
            return None
        import importlib.util

        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            register()

        spec.loader.exec_module = exec_module
        return spec


def register() -> None:
    """Adds the l3ic plugin and the .l3ic extension to imageio's tables (idempotent).

    Only imageio's configuration is touched; ``l3ic.imageio_plugin`` is imported by imageio
    when a .l3ic file is first read or written.
    """
    from imageio.config import (
        FileExtension,
        PluginConfig,
        extension_list,
        known_extensions,
        known_plugins,
    )

    known_plugins["l3ic"] = PluginConfig("l3ic", "L3ICPlugin", "l3ic.imageio_plugin")
    entries = known_extensions.setdefault(".l3ic", [])
    if not any("l3ic" in e.priority for e in entries):
        ext = FileExtension(
            extension=".l3ic",
            priority=["l3ic"],
            name="l3ic",
            description="l3ic learned lossy image codec",
        )
        entries.insert(0, ext)
        extension_list.append(ext)


def install() -> None:
    """Installs the finder once, unless imageio is already imported (then registers now)."""
    if _TARGET in sys.modules:
        register()
    elif not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport())


install()
