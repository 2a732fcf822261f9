"""LOCAL's errors mapped onto :mod:`cloudstore.exceptions`: the store is a file system, so what
it raises is :class:`OSError`, told apart by its class and ``errno``."""

from __future__ import annotations

import errno

from cloudstore.exceptions import (
    CloudStoreException,
    InvalidNameException,
    NotFoundException,
    PermissionDeniedException,
    ProviderConnectionException,
)

#: A full, over-quota or read-only file system: retrying cannot help.
_LASTING = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def map_os_error(error: BaseException) -> CloudStoreException | None:
    """The cloudstore exception for a file-system error; ``None`` if ``error`` is not an OSError."""
    if isinstance(error, FileNotFoundError):
        return NotFoundException(f"not found: {error.filename}", status=404)
    if isinstance(error, PermissionError):
        return PermissionDeniedException(f"permission denied: {error.filename}", status=403)
    if isinstance(error, (NotADirectoryError, IsADirectoryError, FileExistsError)):
        return InvalidNameException(
            "on LOCAL an object name cannot also be a folder of other objects (e.g. 'a' and 'a/b')"
        )
    if isinstance(error, OSError) and error.errno == errno.ENAMETOOLONG:
        return InvalidNameException("the object's path is too long for this file system")
    if isinstance(error, OSError) and error.errno in _LASTING:
        return CloudStoreException(f"file system error: {error.strerror}")
    if isinstance(error, OSError):
        return ProviderConnectionException(f"file system error: {error.strerror}")
    return None
