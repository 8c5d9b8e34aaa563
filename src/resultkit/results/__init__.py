"""Results: where task values are stored, and how they are read back safely.

Public names (this module is their one home):

* :class:`Result`, the base; :class:`StorageResult`, a Result over a
  :class:`Storage` (the byte-level API a new backend implements).
* Backends: :class:`LocalResult`, :class:`MemoryResult`, :class:`S3Result`,
  :class:`GCSResult`, :class:`AzureResult`, :class:`FSSpecResult` (any fsspec
  filesystem, also via :func:`from_url`), :class:`ConstantResult`.
* :class:`Record` (the integrity record) and :class:`FormattedLocation`.
"""

from ._base import Result
from ._batch import BatchError
from ._fsspec import FSSpecResult, from_url
from ._location import FormattedLocation
from ._record import Record
from ._storage_result import StorageResult
from .azure import AzureResult
from .constant import ConstantResult
from .gcs import GCSResult
from .local import LocalResult
from .memory import MemoryResult
from .retry import RetryPolicy
from .s3 import S3Result
from .storage import Metadata, Storage, StorageWriter

__all__ = [
    "Result",
    "StorageResult",
    "Storage",
    "StorageWriter",
    "Metadata",
    "FSSpecResult",
    "LocalResult",
    "MemoryResult",
    "ConstantResult",
    "S3Result",
    "GCSResult",
    "AzureResult",
    "FormattedLocation",
    "Record",
    "RetryPolicy",
    "BatchError",
    "from_url",
]
