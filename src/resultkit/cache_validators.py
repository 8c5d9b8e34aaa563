"""Public home of the cache validators (Prefect 1's ``engine.cache_validators``)."""

from .caching.validators import *  # noqa: F403
from .caching.validators import __all__ as __all__
