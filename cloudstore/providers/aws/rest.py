"""The lean request path of the AWS provider: S3's hot requests without boto3's request pipeline.

Single PUT, GET (whole or ranged), HEAD, DELETE, ListObjectsV2 pages, UploadPart and
DeleteObjects are built here, signed once each by :class:`~cloudstore.providers.aws.auth.SigV4Signer`
(what botocore's ``S3SigV4Auth`` sends, with the session's credentials frozen per request, so
their refresh works as for the client), sent over
the shared :class:`~cloudstore._http.pool.ConnectionPool`, and their answers parsed with the C
ElementTree. boto3's pipeline (events, parameter validation, endpoint rules, response parsing)
cost about 1 ms of client CPU per small request; this path costs a third of that
(``benchmarks/NOTES.md``). Errors are parsed from S3's XML error body and mapped by the same
table as boto3's (:mod:`cloudstore.providers.aws.errors`). The control plane (buckets, multipart
create/complete/abort, copies, signed URLs and forms) stays on boto3's client.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import urllib.parse
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from botocore.credentials import Credentials

from cloudstore._checksums import Checksum, multipart_etag_checksum
from cloudstore._http import PooledBody, content_range_total, http_date, md5_base64, strip_etag
from cloudstore._http.framing import Headers
from cloudstore._http.pool import ConnectionPool, Origin, PoolResponse, ssl_context
from cloudstore.backend import ObjectInfo, Page
from cloudstore.providers.aws.auth import ClientSettings, SigV4Signer
from cloudstore.providers.aws.errors import DELETE_ITEM_STATUS, error_from_body, exception_for

DEFAULT_REGION = "us-east-1"
#: A bucket name that can be a DNS label of a virtual host (dots break TLS wildcard certificates).
_DNS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_META = "x-amz-meta-"
PLAIN_MD5 = re.compile(r"^[0-9a-f]{32}$")
#: Server-side encryption whose ETag is not the MD5 of the plaintext.
_ETAG_NOT_MD5_ENCRYPTION = ("aws:kms", "aws:kms:dsse")


def aws_endpoint(region: str) -> str:
    """AWS's own S3 endpoint of ``region``."""
    return "https://s3.amazonaws.com" if region == DEFAULT_REGION else f"https://s3.{region}.amazonaws.com"


def quote_key(key: str) -> str:
    """An object key as S3's URL path spells it (what botocore sends and signs)."""
    return urllib.parse.quote(key, safe="/~")


def _query(params: Mapping[str, str]) -> str:
    return "&".join(f"{k}={urllib.parse.quote(v, safe='-_.~')}" for k, v in params.items())


def _namespace(root: ET.Element) -> str:
    return root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""


def etag_checksum(
    etag: str | None, size: int, metadata: Mapping[str, str], encryption: str | None, customer_key: str | None
) -> Checksum | tuple[str, str] | None:
    """What the ETag lets a download verify, unless SSE-KMS or SSE-C made it no MD5.

    A single PUT's (or copy's) ETag is the content's MD5. A multipart ETag is the MD5 of the
    parts' MD5s: checkable only knowing where the parts were cut, which cloudstore records in
    the metadata of what it uploads (objects other tools wrote in parts are not verified).
    """
    if etag is None or encryption in _ETAG_NOT_MD5_ENCRYPTION or customer_key:
        return None
    if PLAIN_MD5.match(etag):
        return ("md5", etag)
    return multipart_etag_checksum(etag, size, metadata)


def object_info(name: str, headers: Headers) -> ObjectInfo:
    """The object's properties from the headers of a HEAD or GET answer."""
    metadata = headers.prefixed(_META)
    etag = strip_etag(headers.get("etag"))
    total = content_range_total(headers.get("content-range"))
    size = total if total is not None else int(headers.get("content-length") or 0)
    modified = headers.get("last-modified")
    return ObjectInfo(
        name=name,
        size=size,
        last_modified=http_date(modified) if modified else None,
        etag=etag,
        content_type=headers.get("content-type"),
        metadata=metadata,
        checksum=etag_checksum(
            etag,
            size,
            metadata,
            headers.get("x-amz-server-side-encryption"),
            headers.get("x-amz-server-side-encryption-customer-algorithm"),
        ),
    )


class S3Rest:
    """S3's data-plane requests over one bounded pool (one per backend, shared by its threads)."""

    def __init__(
        self,
        credentials: Credentials | None,
        region: str,
        settings: ClientSettings,
        *,
        kms_key_id: str | None = None,
        content_md5: bool = True,
    ) -> None:
        self._signer = SigV4Signer(credentials, region, settings.payload_signing)
        endpoint = settings.endpoint_url or aws_endpoint(region)
        self._base = Origin.from_url(endpoint)
        self._base_path = urllib.parse.urlsplit(endpoint).path.rstrip("/")
        self._style = settings.addressing_style
        self._crc32 = settings.checksums == "when_supported"
        self._content_md5 = content_md5
        self.pool = ConnectionPool(
            max_connections=settings.pool_size,
            timeouts=settings.timeouts,
            ssl_context=ssl_context(settings.verify if settings.verify is not None else True),
        )
        self._encryption: dict[str, str] = (
            {"x-amz-server-side-encryption": "aws:kms", "x-amz-server-side-encryption-aws-kms-key-id": kms_key_id}
            if kms_key_id
            else {}
        )
        self._addresses: dict[str, tuple[Origin, str]] = {}

    def close(self) -> None:
        self.pool.close()

    # --- addressing and signing ---------------------------------------------------------------
    def _address(self, bucket: str) -> tuple[Origin, str]:
        """The origin and path prefix of ``bucket``'s requests (path or virtual-host style)."""
        address = self._addresses.get(bucket)
        if address is None:
            virtual = self._style == "virtual" or (
                self._style == "auto"
                and _DNS_BUCKET.match(bucket) is not None
                and not (self._base.scheme == "https" and "." in bucket)
            )
            if virtual:
                base = self._base
                address = (Origin(base.scheme, f"{bucket}.{base.host}", base.port), self._base_path)
            else:
                address = (self._base, f"{self._base_path}/{urllib.parse.quote(bucket, safe='~')}")
            self._addresses[bucket] = address
        return address

    def _send(
        self,
        operation: str,
        method: str,
        bucket: str,
        key: str | None = None,
        query: str = "",
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        *,
        streaming: bool = False,
        idempotent: bool | None = None,
    ) -> PoolResponse:
        """Sign and send one request; an error answer raises its mapped exception."""
        origin, path = self._address(bucket)
        if key is not None:
            path = f"{path}/{quote_key(key)}"
        elif not path:
            path = "/"
        target = f"{path}?{query}" if query else path
        headers = headers or {}
        headers["Host"] = origin.netloc
        self._signer.sign(method, origin.scheme == "https", path, query, headers, body, streaming=streaming)
        response = self.pool.request(method, origin, target, headers, body, idempotent=idempotent)
        if response.status >= 300:
            with response:
                data = response.read()
            raise error_from_body(response.status, data, operation)
        return response

    def _upload_headers(self, data: bytes, content_md5: bytes | None) -> dict[str, str]:
        headers: dict[str, str] = {}
        if content_md5 is not None and self._content_md5:
            headers["Content-MD5"] = md5_base64(content_md5)
        if self._crc32:
            headers["x-amz-checksum-crc32"] = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
        return headers

    # --- requests -------------------------------------------------------------------------------
    def put_object(
        self,
        bucket: str,
        name: str,
        data: bytes,
        content_type: str,
        metadata: Mapping[str, str],
        condition_headers: Mapping[str, str],
        content_md5: bytes | None,
    ) -> None:
        """PutObject (the service checks Content-MD5 and the condition as it stores)."""
        headers = self._upload_headers(data, content_md5)
        headers["Content-Type"] = content_type
        headers.update({_META + key: value for key, value in metadata.items()})
        headers.update(condition_headers)
        headers.update(self._encryption)
        self._send("PutObject", "PUT", bucket, name, headers=headers, body=data, streaming=True).close()

    def get_object(self, bucket: str, name: str, byte_range: str | None) -> PooledBody:
        """GetObject, whole or a ``Range``; the reader's ``info`` describes the whole object."""
        response = self._send("GetObject", "GET", bucket, name, headers={"Range": byte_range} if byte_range else None)
        return PooledBody(response, object_info(name, response.headers))

    def head_object(self, bucket: str, name: str) -> ObjectInfo:
        """HeadObject (an error raises: a 404 or 403 without a code, HEAD answers carry no body)."""
        response = self._send("HeadObject", "HEAD", bucket, name)
        response.close()
        return object_info(name, response.headers)

    def delete_object(self, bucket: str, name: str) -> None:
        self._send("DeleteObject", "DELETE", bucket, name).close()

    def list_objects(
        self, bucket: str, prefix: str | None, delimiter: str | None, max_keys: int | None, token: str | None
    ) -> Page[ObjectInfo]:
        """One ListObjectsV2 page (keys URL-encoded on the wire, as botocore asks for them)."""
        params = {"list-type": "2", "encoding-type": "url"}
        if prefix:
            params["prefix"] = prefix
        if delimiter:
            params["delimiter"] = delimiter
        if max_keys is not None:
            params["max-keys"] = str(max_keys)
        if token:
            params["continuation-token"] = token
        with self._send("ListObjectsV2", "GET", bucket, query=_query(params)) as response:
            return list_page(response.read())

    def upload_part(
        self, bucket: str, name: str, upload_id: str, number: int, data: bytes, content_md5: bytes | None
    ) -> str:
        """UploadPart; the part's ETag (quoted, as CompleteMultipartUpload takes it back)."""
        query = _query({"partNumber": str(number), "uploadId": upload_id})
        headers = self._upload_headers(data, content_md5)
        with self._send("UploadPart", "PUT", bucket, name, query, headers, data, streaming=True) as response:
            return str(response.headers.get("ETag") or "")

    def delete_objects(self, bucket: str, names: list[str]) -> list[tuple[str, Any]]:
        """DeleteObjects, quiet: the ``(key, exception)`` of each key the service did not delete."""
        body = "".join(f"<Object><Key>{escape(name)}</Key></Object>" for name in names)
        data = f'<?xml version="1.0" encoding="UTF-8"?><Delete><Quiet>true</Quiet>{body}</Delete>'.encode()
        headers = {"Content-MD5": md5_base64(hashlib.md5(data).digest()), "Content-Type": "application/xml"}
        # Deleting the same keys again does no harm: a lost answer may be resent.
        with self._send("DeleteObjects", "POST", bucket, None, "delete", headers, data, idempotent=True) as response:
            answer = response.read()
        root = ET.fromstring(answer) if answer else None
        if root is None:
            return []
        ns = _namespace(root)
        if root.tag == ns + "Error":  # S3 may put a whole request's failure in a 200 answer
            raise error_from_body(500, answer, "DeleteObjects")
        failures = []
        for entry in root.iterfind(ns + "Error"):
            code = entry.findtext(ns + "Code") or ""
            message = entry.findtext(ns + "Message") or ""
            error = exception_for(code or None, DELETE_ITEM_STATUS.get(code, 400), "DeleteObjects", message)
            failures.append((entry.findtext(ns + "Key") or "", error))
        return failures


#: What a listing tells of each object (the ``<Contents>`` children read).
_LISTED = ("Key", "Size", "LastModified", "ETag")


#: One field of a listed object as S3 writes it: no attributes, no children, text escaped.
_FIELDS = [re.compile(f"<{tag}>([^<]*)</{tag}>") for tag in _LISTED]
_PREFIX = re.compile(r"<CommonPrefixes>\s*<Prefix>([^<]*)</Prefix>\s*</CommonPrefixes>")
_TRUNCATED = re.compile(r"<IsTruncated>\s*true\s*</IsTruncated>")
_TOKEN = re.compile(r"<NextContinuationToken>([^<]*)</NextContinuationToken>")


def list_page(body: bytes) -> Page[ObjectInfo]:
    """A ListObjectsV2 answer (keys URL-encoded) as a page.

    S3's listing is flat, so each field of the objects is read as a column over the whole page
    by one regular expression: about half the cost of reading it through the C ElementTree, and
    none of the ~6 objects per key its tree leaves to the garbage collector (``benchmarks/NOTES.md``).
    An answer of any other shape (a field missing from an entry, namespace prefixes, attributes,
    CDATA: the columns would not line up or would miss something) is read by the tree instead.
    Listings carry no encryption details, so no checksum is claimed from them (an SSE-KMS ETag
    is not an MD5); head_object gives it.
    """
    text = body.decode("utf-8")
    columns = [pattern.findall(text) for pattern in _FIELDS]
    prefixes = _PREFIX.findall(text)
    entries = len(columns[0])
    if (
        any(len(column) != entries for column in columns)
        or text.count("Contents>") != 2 * entries
        or text.count("CommonPrefixes>") != 2 * len(prefixes)
        or "<![CDATA[" in text
    ):
        return _list_page_tree(body)
    keys, sizes, modified, etags = columns
    token = _TOKEN.search(text) if _TRUNCATED.search(text) else None
    return _page(
        [_xml_text(key) for key in keys],
        sizes,
        modified,
        etags,
        [_xml_text(prefix) for prefix in prefixes],
        _xml_text(token.group(1)) if token else None,
    )


def _list_page_tree(body: bytes) -> Page[ObjectInfo]:
    """:func:`list_page` for the answers that are not flat: through the C ElementTree, entry by
    entry (a field an entry lacks is ``None``)."""
    root = ET.fromstring(body)
    ns = _namespace(root)
    entries = root.findall(ns + "Contents")
    keys, sizes, modified, etags = ([entry.findtext(ns + tag) for entry in entries] for tag in _LISTED)
    prefixes = [
        found for entry in root.iterfind(ns + "CommonPrefixes") if (found := entry.findtext(ns + "Prefix")) is not None
    ]
    truncated = root.findtext(ns + "IsTruncated") == "true"
    token = root.findtext(ns + "NextContinuationToken") if truncated else None
    return _page(keys, sizes, modified, etags, prefixes, token)


def _page(
    keys: Sequence[str | None],
    sizes: Sequence[str | None],
    modified: Sequence[str | None],
    etags: Sequence[str | None],
    prefixes: Sequence[str],
    token: str | None,
) -> Page[ObjectInfo]:
    """The page of a listing's columns (text as in the document: keys and prefixes URL-encoded)."""
    iso = datetime.fromisoformat
    items = [
        ObjectInfo(
            _unquote(key) if key else "",
            int(size or 0),
            iso(when) if when else None,
            _xml_text(etag).strip('"') if etag else None,
        )
        for key, size, when, etag in zip(keys, sizes, modified, etags, strict=True)
    ]
    return Page(items, next_marker=token or None, prefixes=[_unquote(prefix) for prefix in prefixes])


def _xml_text(value: str) -> str:
    """An XML text value with its character references resolved (most have none; an ETag's
    quotes often are: those are replaced without the general unescaping)."""
    if "&" not in value:
        return value
    value = value.replace("&#34;", '"').replace("&quot;", '"')
    return html.unescape(value) if "&" in value else value


def _unquote(value: str) -> str:
    """A key as listed with ``encoding-type=url`` (most need no decoding: the test is cheaper)."""
    return urllib.parse.unquote_plus(value) if "%" in value or "+" in value else value
