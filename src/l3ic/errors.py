"""The one exception type that l3ic raises for bad input, and how errors are shown in one line."""

__all__ = ["L3ICError", "DecompressionBombError", "one_line"]


class L3ICError(ValueError):
    """Bad input of any kind: not an image, a damaged or foreign .l3ic file, missing weights.

    It is a ``ValueError``, so code that already catches those keeps working.
    """


class DecompressionBombError(L3ICError):
    """A file declares more pixels than the decoding limit allows (``l3ic.container.pixel_limit``).

    Raise the limit with ``max_pixels=`` (API, imageio plugin), ``$L3IC_MAX_PIXELS`` or
    ``--max-pixels`` (CLI) for files you trust.
    """


def one_line(error: Exception | str) -> str:
    """The message of ``error`` on one line: an ``OSError`` by its ``strerror`` when it has one,
    an exception without a message by its type's name."""
    if isinstance(error, OSError) and error.strerror:
        text = error.strerror
    else:
        text = str(error)
    return " ".join(text.split()) or type(error).__name__
