"""AzureResult: results in an Azure Blob Storage container via adlfs."""

from __future__ import annotations

import os
from typing import Any

from fsspec.asyn import sync
from fsspec.spec import AbstractFileSystem

from ..errors import ConfigurationError
from ..serializers import Serializer
from ._fsspec import FSSpecResult
from ._location import LocationTemplate
from ._objectstore import ObjectStoreStorage

__all__ = ["AzureResult", "AzureStorage"]


class AzureStorage(ObjectStoreStorage):
    """Blobs in an Azure container; ``exists`` is one HEAD; credentials resolved at first use."""

    def _build_filesystem(
        self, cls: type[AbstractFileSystem], options: dict[str, Any]
    ) -> AbstractFileSystem:
        if "connection_string" not in options and "account_name" not in options:
            conn = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
            account = os.environ.get("AZURE_STORAGE_ACCOUNT_NAME")
            if conn:
                options["connection_string"] = conn
            elif account:
                options["account_name"] = account
                options.setdefault("anon", False)  # adlfs then uses DefaultAzureCredential
            else:
                raise ConfigurationError(
                    f"AzureResult at {self.root_url} has no credentials: pass "
                    "connection_string=..., or account_name=... (with credential=... or "
                    "DefaultAzureCredential), or set AZURE_STORAGE_CONNECTION_STRING"
                )
        return cls(**options)

    def _head_path(self, path: str) -> bool:
        fs: Any = self.fs
        container, key, _ = fs.split_path(path)

        async def head() -> bool:
            from azure.core.exceptions import ResourceNotFoundError

            try:
                async with fs.service_client.get_blob_client(container, key) as blob:
                    await blob.get_blob_properties()  # one HEAD
            except ResourceNotFoundError:
                return False
            return True

        return bool(sync(fs.loop, head))


class AzureResult(FSSpecResult):
    """Results stored as blobs in an Azure container (``pip install 'resultkit[azure]'``).

    Credentials, first found wins: ``connection_string``, ``account_name`` with
    ``credential`` (an account key, SAS token or azure-identity credential),
    the ``AZURE_STORAGE_CONNECTION_STRING`` environment variable, then
    ``account_name`` (or ``AZURE_STORAGE_ACCOUNT_NAME``) with
    ``DefaultAzureCredential``. Like S3Result and GCSResult, they are
    resolved at first use, so a flow can be built on a machine without them.
    Secrets never appear in ``repr()`` or errors.

    Args:
        container: the container name.
        location: location template under ``container/prefix``.
        serializer: default :class:`~resultkit.serializers.PickleSerializer`.
        connection_string: an Azure Storage connection string.
        account_name: the storage account.
        credential: key, SAS token or token credential for ``account_name``.
        prefix: a folder inside the container.
        storage_options: any other :class:`adlfs.AzureBlobFileSystem` argument.
    """

    default_protocol = "az"
    filesystem_class = "adlfs:AzureBlobFileSystem"
    extra = "azure"
    storage_class = AzureStorage

    def __init__(
        self,
        container: str,
        location: LocationTemplate | None = None,
        serializer: Serializer | None = None,
        *,
        connection_string: str | None = None,
        account_name: str | None = None,
        credential: Any = None,
        prefix: str = "",
        storage_options: dict[str, Any] | None = None,
        value: Any = None,
        verify: bool = True,
        signing_key: Any = None,
    ) -> None:
        options = dict(storage_options or {})
        if connection_string:
            options.setdefault("connection_string", connection_string)
        elif account_name:
            options.setdefault("account_name", account_name)
            if credential is not None:
                options.setdefault("credential", credential)
            else:
                options.setdefault("anon", False)  # adlfs then uses DefaultAzureCredential
        self.container = container
        self._init_bucket(
            "container",
            container,
            prefix,
            options,
            location,
            serializer,
            value,
            verify,
            signing_key,
        )
