"""resultkit: persist and reuse task results on any storage.

Standalone results::

    from resultkit.results import LocalResult
    r = LocalResult(dir="~/.resultkit/results", location="{task_name}.pkl")
    r.write(42, task_name="answer").read().value    # -> 42
"""

from __future__ import annotations

from . import errors

__version__ = "0.1.0"

__all__ = ["errors", "__version__"]
