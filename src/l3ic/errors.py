"""The one exception type that l3ic raises for bad input."""

__all__ = ["L3ICError"]


class L3ICError(ValueError):
    """Bad input of any kind: not an image, a damaged or foreign .l3ic file, missing weights.

    It is a ``ValueError``, so code that already catches those keeps working.
    """
