"""Receive one uploaded file while it streams in: counted against the limit, written under our name.

FastAPI's ``UploadFile`` would spool the whole body (to memory, then to the system's temporary
folder) before the route runs, so neither the size limit nor the storage place would be ours.
Here the multipart body is parsed chunk by chunk (python-multipart's streaming parser) and the
file part goes straight into a file the caller named; the client's file name is only returned,
cleaned, never used as a path.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

FIELD = "file"
MULTIPART_SLACK = 64 * 1024  # the multipart envelope around the file: boundaries, part headers, small fields
DRAIN_BYTES = 8 * 1024 * 1024  # read (and drop) at most this much of a refused body so the client sees the answer


class UploadError(Exception):
    """An upload refused: ``status`` is the HTTP status, the message says what to do."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def clean_filename(name: str | None, *, limit: int = 120) -> str:
    """The client's file name made safe to show: last path part, printable characters, bounded length."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] not in "CZ" or c == " ").strip()
    name = name.lstrip(".") or "upload"
    return name[:limit]


async def receive_upload(request: Request, dest: Path, *, max_bytes: int) -> str:
    """Write the ``file`` field of a multipart request to ``dest``, counting bytes as they arrive.

    Args:
        request: the incoming request (its body is read here, once).
        dest: where to write; created here (exclusively, mode 0600), never following a link.
        max_bytes: the largest file accepted.

    Returns:
        The client's file name, cleaned for display.

    Raises:
        UploadError: 400 (not multipart, no ``file`` field, more than one file, empty, malformed,
            client gone) or
            413 (larger than ``max_bytes``). ``dest`` may remain; the caller removes it.
    """
    ctype, params = parse_options_header(request.headers.get("content-type"))
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        await drain(request)
        raise UploadError(
            400, f"Send the video as multipart/form-data in a field named '{FIELD}' (e.g. curl -F file=@clip.mp4 URL)"
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + MULTIPART_SLACK:
        await drain(request)
        raise UploadError(413, _too_large(max_bytes))

    part = _Part(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600), max_bytes)
    parser = MultipartParser(params[b"boundary"], part.callbacks())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            if part.too_large:
                await drain(request)
                raise UploadError(413, _too_large(max_bytes))
        parser.finalize()
    except MultipartParseError as exc:
        raise UploadError(
            400, f"The upload is not well-formed multipart/form-data ({exc}); send it with curl -F or a browser form"
        ) from exc
    except ClientDisconnect as exc:
        raise UploadError(400, "The client went away before the upload ended") from exc
    finally:
        os.close(part.fd)
    if part.files > 1:
        raise UploadError(
            400,
            f"The upload holds {part.files} files; send one file per request "
            f"(one field '{FIELD}'), one request per video",
        )
    if not part.found:
        raise UploadError(400, f"No field named '{FIELD}' in the upload; send the video as {FIELD}=@clip.mp4")
    if part.written == 0:
        raise UploadError(400, f"{clean_filename(part.filename)} is empty (0 bytes); choose another file")
    return clean_filename(part.filename)


def _too_large(max_bytes: int) -> str:
    limit = f"{max_bytes / 2**20:.1f} MiB" if max_bytes >= 2**20 else f"{max_bytes / 1024:.0f} KiB"
    return (
        f"The upload is larger than this server's limit of {limit}; "
        "cut or compress the video (or start the server with a larger --max-upload-mb)"
    )


async def drain(request: Request) -> None:
    """Read and drop what is left of the body (up to a bound), so that the client, still sending,
    reads our answer rather than a reset connection."""
    seen = 0
    try:
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > DRAIN_BYTES:
                return
    except (ClientDisconnect, RuntimeError):  # RuntimeError: the stream was already consumed
        return


class _Part:
    """State of the multipart parse: which part we are in, and the file part's bytes."""

    def __init__(self, fd: int, max_bytes: int):
        self.fd, self.max_bytes = fd, max_bytes
        self.written, self.found, self.filename, self.too_large = 0, False, None, False
        self.files = 0
        self._header_field = self._header_value = b""
        self._disposition = b""
        self._in_file = False

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._field,
            "on_header_value": self._value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_done,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }

    def _begin(self):
        self._disposition, self._in_file = b"", False

    def _field(self, data, start, end):
        self._header_field += data[start:end]

    def _value(self, data, start, end):
        self._header_value += data[start:end]

    def _header_end(self):
        if self._header_field.strip().lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_field = self._header_value = b""

    def _headers_done(self):
        _, options = parse_options_header(self._disposition.decode("latin-1"))
        # A part is a file when it is named 'file' or carries a file name: more than one is refused
        # (after the parse); only the first 'file' part is stored, other small fields are dropped.
        if options.get(b"name") == FIELD.encode() or b"filename" in options:
            self.files += 1
        if options.get(b"name") == FIELD.encode() and not self.found:
            self.found, self._in_file = True, True
            raw = options.get(b"filename", b"")
            self.filename = raw.decode("utf-8", "replace")

    def _data(self, data, start, end):
        if not self._in_file or self.too_large:
            return
        n = end - start
        if self.written + n > self.max_bytes:
            self.too_large = True
            return
        view = memoryview(data)[start:end]
        while view:
            view = view[os.write(self.fd, view) :]
        self.written += n

    def _end(self):
        self._in_file = False
