"""Public home of the triggers (``all_successful``, ``manual_only``...)."""

from .engine.triggers import *  # noqa: F403
from .engine.triggers import __all__ as __all__
