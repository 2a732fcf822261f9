"""cloudstore: one object model for object storage on every cloud.

>>> from cloudstore import CloudProviderFactory, ProviderList
>>> provider = CloudProviderFactory().create_provider(ProviderList.LOCAL, {"local_root": "/tmp/store"})

Importing this package imports no cloud SDK; a provider's SDK is loaded when
that provider is first used.
"""

from __future__ import annotations

from cloudstore._engine import TransferConfig
from cloudstore._files import open_address as open
from cloudstore._pagination import ResultList
from cloudstore._retry import RetryPolicy
from cloudstore.addresses import open_bucket, open_object
from cloudstore.backend import SignedPost, SignedURL
from cloudstore.bulk import BulkReport, Failure, sync
from cloudstore.config import ProviderList
from cloudstore.exceptions import (
    AuthenticationException,
    ChecksumMismatchException,
    CleanupWarning,
    CloudStoreException,
    DuplicateResourceException,
    InvalidNameException,
    InvalidParamException,
    NotFoundException,
    NotSupportedException,
    PermissionDeniedException,
    PreconditionFailedException,
    ProviderConnectionException,
    ThrottledException,
)
from cloudstore.factory import CloudProviderFactory, list_providers
from cloudstore.model import Bucket, BucketObject, CloudProvider

__version__ = "0.1.0"

__all__ = [
    "AuthenticationException",
    "Bucket",
    "BucketObject",
    "BulkReport",
    "ChecksumMismatchException",
    "CleanupWarning",
    "CloudProvider",
    "CloudProviderFactory",
    "CloudStoreException",
    "DuplicateResourceException",
    "Failure",
    "InvalidNameException",
    "InvalidParamException",
    "NotFoundException",
    "NotSupportedException",
    "PermissionDeniedException",
    "PreconditionFailedException",
    "ProviderConnectionException",
    "ProviderList",
    "ResultList",
    "RetryPolicy",
    "SignedPost",
    "SignedURL",
    "ThrottledException",
    "TransferConfig",
    "list_providers",
    "open",
    "open_bucket",
    "open_object",
    "sync",
]
