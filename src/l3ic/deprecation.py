"""Old spellings that still work for one release, each with the same warning.

``warn_deprecated("Codec.channels", "Codec.num_channels")`` warns ``DeprecationWarning``:
"Codec.channels is deprecated and goes in l3ic 0.20: use Codec.num_channels", pointed at the
first line outside l3ic that led to it (however deep inside l3ic the old spelling is noticed,
and through an import), so Python shows it where the user's own code runs. docs/layout.md
("Names") lists every old spelling that warns.
"""

import sys
import warnings

__all__ = ["REMOVED_IN", "warn_deprecated", "renamed_keyword", "renamed_property"]

REMOVED_IN = "0.20"


def _passed_over(frame) -> bool:
    """Whether a frame is l3ic's or the import machinery's (``importlib.import_module`` too)."""
    name = str(frame.f_globals.get("__name__", ""))
    return name.split(".")[0] in ("l3ic", "importlib") or frame.f_code.co_filename.startswith(
        "<frozen"
    )


def _user_level() -> int:
    """The ``stacklevel`` for ``warn_deprecated``'s ``warnings.warn``: that of the first frame
    outside l3ic and the import machinery. ``warnings.warn`` passes over the frozen import
    frames by itself, so they are not counted."""
    level, frame = 2, sys._getframe(2)  # 0: this function, 1: warn_deprecated, 2: its caller
    while frame is not None and _passed_over(frame):
        if not frame.f_code.co_filename.startswith("<frozen"):
            level += 1
        frame = frame.f_back
    return level


def warn_deprecated(old: str, new: str) -> None:
    """Warns that ``old`` is deprecated in favour of ``new``, at the user's line."""
    warnings.warn(
        f"{old} is deprecated and goes in l3ic {REMOVED_IN}: use {new}",
        DeprecationWarning,
        stacklevel=_user_level(),
    )


def renamed_keyword(old: str, new: str, old_value, new_value):
    """The value of keyword ``new``, or of its old name ``old`` (warning) when that was given.

    Raises:
        TypeError: both were given.
    """
    if old_value is None:
        return new_value
    warn_deprecated(f"{old}=", f"{new}=")
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
