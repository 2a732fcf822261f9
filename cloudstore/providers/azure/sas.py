"""Azure signed URLs: service SAS (account key) and user-delegation SAS (a TokenCredential).

A user-delegation SAS is signed with a user delegation key the service hands out to a token
holder. The key, not the token, is what signs: the SAS lives until the key expires, however
short the token's life. So a key is asked for that outlives every URL signed with it (up to
Azure's limit of 7 days), and then reused while it does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from azure.storage.blob import BlobSasPermissions, UserDelegationKey, generate_blob_sas

from cloudstore.exceptions import InvalidParamException

#: The longest a user delegation key (and so a user-delegation SAS) may live.
MAX_DELEGATION = timedelta(days=7)


def blob_sas_url(
    blob_url: str,
    account_name: str,
    container: str,
    blob: str,
    method: str,
    expiry: datetime,
    *,
    account_key: str | None = None,
    user_delegation_key: UserDelegationKey | None = None,
) -> str:
    """``blob_url`` with a SAS for ``method`` (``GET``: read; ``PUT``: create + write, no read).

    Signed with the account key (a service SAS) or a user delegation key (a user-delegation SAS).
    No network call.
    """
    if method == "GET":
        permission = BlobSasPermissions(read=True)
    elif method == "PUT":
        permission = BlobSasPermissions(create=True, write=True)
    else:
        raise InvalidParamException(f"cannot sign a URL for HTTP {method}: use GET or PUT")
    token = generate_blob_sas(
        account_name=account_name,
        container_name=container,
        blob_name=blob,
        account_key=account_key,
        user_delegation_key=user_delegation_key,
        permission=permission,
        expiry=expiry,
        # spr=https: a URL for an https endpoint is refused over plain HTTP.
        protocol="https" if blob_url.lower().startswith("https://") else None,
    )
    return f"{blob_url}?{token}"


class DelegationKeys:
    """The current user delegation key, asked for (``fetch(start, expiry)``) only when none
    covers a URL's expiry: one request per week at most."""

    def __init__(self, fetch: Callable[[datetime, datetime], UserDelegationKey]) -> None:
        self._fetch = fetch
        self._key: UserDelegationKey | None = None
        self._expiry = datetime.min.replace(tzinfo=UTC)
        self._lock = threading.Lock()

    def covering(self, now: datetime, expiry: datetime) -> UserDelegationKey:
        """A key valid until ``expiry`` at least (refused beyond Azure's 7 days)."""
        if expiry - now > MAX_DELEGATION:
            raise InvalidParamException("a user-delegation SAS may last at most 7 days (604800 seconds)")
        with self._lock:
            if self._key is None or self._expiry < expiry:
                # A week less a margin, and never less than the URL needs: no URL outlives its key.
                key_expiry = max(expiry, now + MAX_DELEGATION - timedelta(minutes=5))
                self._key = self._fetch(now, key_expiry)
                self._expiry = key_expiry
            return self._key
