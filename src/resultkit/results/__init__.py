"""Results: where task values are stored, and how they are read back safely.

Every backend is a small module over :class:`FSSpecResult`, which holds the
shared behaviour: location templating and safety checks, the integrity
record beside each payload, and atomic publish.
"""

from ._base import Result
from ._fsspec import FSSpecResult, from_url
from ._location import FormattedLocation
from ._record import Record
from .azure import AzureResult
from .constant import ConstantResult
from .gcs import GCSResult
from .local import LocalResult
from .memory import MemoryResult
from .s3 import S3Result

__all__ = [
    "Result",
    "FSSpecResult",
    "LocalResult",
    "MemoryResult",
    "ConstantResult",
    "S3Result",
    "GCSResult",
    "AzureResult",
    "FormattedLocation",
    "Record",
    "from_url",
]
