"""Serializers: turn values into bytes and back. They know nothing of storage.

Every serializer has a stable :attr:`~Serializer.name` that is recorded with
each payload it writes.
"""

from ._base import Serializer
from ._basic import DateTimeSerializer, JSONSerializer
from ._compressed import CompressedSerializer
from ._numpy import NumpySerializer
from ._pandas import PandasSerializer
from ._pickle import PickleSerializer, load_pickle

__all__ = [
    "Serializer",
    "PickleSerializer",
    "JSONSerializer",
    "DateTimeSerializer",
    "PandasSerializer",
    "CompressedSerializer",
    "NumpySerializer",
    "load_pickle",
]
