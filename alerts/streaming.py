"""Serving a stored file with HTTP Range support (a video element seeks with range requests)."""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from django.core.files.storage import Storage
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header
from storages.backends.s3 import S3File

CHUNK_BYTES = 64 * 1024
# At most 18 digits: a longer number is no file offset, and int() refuses over 4,300 digits.
_RANGE = re.compile(r"^bytes\s*=\s*(\d{0,18})\s*-\s*(\d{0,18})$", re.IGNORECASE)


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive, as in Content-Range

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class RangeNotSatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The single range asked for, or None to send the whole file.

    A header that cannot be parsed, or asks for several ranges, is ignored (RFC 9110 allows a
    server to answer those with the whole file). A range that starts past the end is unsatisfiable.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if first == "" and last == "":
        return None
    if first == "":  # "bytes=-N": the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable()
        return ByteRange(start=max(0, size - suffix), end=size - 1)
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable()
    return ByteRange(start=start, end=min(int(last) if last else size - 1, size - 1))


def _read(storage: Storage, name: str, start: int, length: int) -> Iterator[bytes]:
    with storage.open(name, "rb") as handle:
        if isinstance(handle, S3File) and length > 0:
            # S3File.seek/read would first download the whole object, on every range request a
            # video element makes: ask S3 (or MinIO) for just the range instead.
            body = handle.obj.get(Range=f"bytes={start}-{start + length - 1}")["Body"]
            try:
                yield from body.iter_chunks(CHUNK_BYTES)
            finally:
                body.close()
            return
        handle.seek(start)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk


def ranged_file_response(request: HttpRequest, *, storage: Storage, name: str, content_type: str,
                         filename: str, as_attachment: bool, etag: str = "") -> HttpResponse | StreamingHttpResponse:
    """200 with the whole file, 206 with the one range asked for, or 416 when it lies past the end."""
    size = storage.size(name)
    if_range = request.headers.get("If-Range")
    try:
        byte_range = parse_range(request.headers.get("Range"), size) if not if_range or if_range == etag else None
    except RangeNotSatisfiable:
        refused = HttpResponse(status=416)
        refused["Content-Range"] = f"bytes */{size}"
        refused["Accept-Ranges"] = "bytes"
        return refused
    start, length = (byte_range.start, byte_range.length) if byte_range else (0, size)
    response = StreamingHttpResponse(_read(storage, name, start, length), content_type=content_type,
                                     status=206 if byte_range else 200)
    response["Content-Length"] = str(length)
    if byte_range:
        response["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{size}"
    response["Accept-Ranges"] = "bytes"
    disposition = content_disposition_header(as_attachment, filename)
    if disposition:  # None only for an inline response without a file name
        response["Content-Disposition"] = disposition
    # Evidence: never kept in shared caches or on the disk of a control-room PC.
    response["Cache-Control"] = "private, no-store"
    if etag:
        response["ETag"] = etag
    return response
