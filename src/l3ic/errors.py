"""The one exception type that l3ic raises for bad input."""

__all__ = ["L3ICError", "DecompressionBombError"]


class L3ICError(ValueError):
    """Bad input of any kind: not an image, a damaged or foreign .l3ic file, missing weights.

    It is a ``ValueError``, so code that already catches those keeps working.
    """


class DecompressionBombError(L3ICError):
    """A file declares more pixels than the decoding limit allows (``l3ic.container.pixel_limit``).

    Raise the limit with ``max_pixels=`` (API, imageio plugin), ``$L3IC_MAX_PIXELS`` or
    ``--max-pixels`` (CLI) for files you trust.
    """
