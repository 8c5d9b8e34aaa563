"""Output caching: validators and input hashing (no knowledge of the engine)."""

from . import validators
from .hashing import UnhashableInputError, input_token, inputs_token

__all__ = ["validators", "input_token", "inputs_token", "UnhashableInputError"]
