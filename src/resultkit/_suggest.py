"""Near-name hints for error messages ("did you mean 'dir'?"), shared by every layer."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["did_you_mean"]


def did_you_mean(word: object, choices: Iterable[str], cutoff: float = 0.6) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest of ``choices``, or ``""``."""
    if not isinstance(word, str):
        return ""
    options = list(choices)
    by_lower = {c.lower(): c for c in options}
    lowered = word.lower()
    if lowered in by_lower:
        return f" (did you mean {by_lower[lowered]!r}?)"
    # A known name the word starts with, or that starts with the word
    # ("directory" -> "dir", "serial" -> "serializer"), beats a mere look-alike.
    affixes = [
        c
        for c in options
        if len(c) >= 3 and (lowered.startswith(c.lower()) or c.lower().startswith(lowered))
    ]
    if affixes and len(lowered) >= 3:
        return f" (did you mean {max(affixes, key=len)!r}?)"
    close = difflib.get_close_matches(word.lower(), options, n=1, cutoff=cutoff)
    return f" (did you mean {close[0]!r}?)" if close else ""
