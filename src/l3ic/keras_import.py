"""Importing Keras without TensorFlow's C++ start-up notes on the terminal."""

import os
import sys

__all__ = ["import_keras_quietly"]


def import_keras_quietly() -> None:
    """Imports keras with file descriptor 2 muted: TensorFlow's C++ start-up notes bypass Python."""
    if "keras" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import keras  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
