"""Public home of the states (``Success``, ``Cached``, ``Paused``, ``Resume``...)."""

from .engine.state import *  # noqa: F403
from .engine.state import __all__ as __all__
