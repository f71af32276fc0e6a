"""Old spellings that still work for one release, each with the same warning.

``warn_deprecated("Codec.channels", "Codec.num_channels")`` warns ``DeprecationWarning``:
"Codec.channels is deprecated and goes in l3ic 0.20: use Codec.num_channels", pointed at the
user's line (``stacklevel``), so Python shows it where the user's own code runs. docs/layout.md
("Names") lists every old spelling that warns.
"""

import warnings

__all__ = ["REMOVED_IN", "warn_deprecated", "renamed_keyword", "renamed_property"]

REMOVED_IN = "0.20"


def warn_deprecated(old: str, new: str, stacklevel: int = 3) -> None:
    """Warns that ``old`` is deprecated in favour of ``new``; ``stacklevel`` as for
    ``warnings.warn``, counted from the caller of this function (3: its caller's caller)."""
    warnings.warn(
        f"{old} is deprecated and goes in l3ic {REMOVED_IN}: use {new}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def renamed_keyword(old: str, new: str, old_value, new_value, stacklevel: int = 4):
    """The value of keyword ``new``, or of its old name ``old`` (warning) when that was given.

    Raises:
        TypeError: both were given.
    """
    if old_value is None:
        return new_value
    warn_deprecated(f"{old}=", f"{new}=", stacklevel)
    if new_value is not None:
        raise TypeError(f"give {new}= or {old}=, not both")
    return old_value


def renamed_property(owner: str, old: str, new: str) -> property:
    """A read-only property ``old`` that warns and returns attribute ``new`` of the object
    (``owner``: the class's name in the message)."""

    def get(self):
        warn_deprecated(f"{owner}.{old}", f"{owner}.{new}")
        return getattr(self, new)

    return property(get, doc=f"Deprecated (until l3ic {REMOVED_IN}): ``{new}``.")
