"""Downloading one raw file: mirrors tried in order, transient errors retried with backoff, a
progress bar on stderr, a sha256 check, and an atomic move into place.

The file is streamed to a temporary sibling of its destination (`.NAME.tmp-PID-XXXX`) and renamed
into place only once it is complete and verified, so a failed or interrupted download leaves
nothing that a later run would trust. Without an expected digest, the first download of a file
name records its sha256 in a checksums file (RECBENCH_DATA/checksums.json) and later downloads
must match it. RECBENCH_OFFLINE=1 turns downloading off; the error then says how to get the file
by hand.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import json
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from .. import paths
from ..atomic import clean_leftovers, new_sibling, replacing
from ..errors import DataError

CHUNK_SIZE = 1 << 16
_NETWORK_ERRORS = (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException)
_UNREACHABLE_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH}


def fetch(
    urls: list[str],
    dest: Path,
    *,
    sha256: str | None = None,
    checksums: Path | None = None,
    retries: int = 3,
    backoff: float = 1.0,
    timeout: float = 60.0,
) -> Path:
    """Download the file at the first of `urls` that works to `dest`, verified; return `dest`."""
    if _offline():
        heading = f"Could not download {dest.name}: RECBENCH_OFFLINE is set, so none of these URLs was tried:"
        raise DataError(_unavailable(dest, heading, urls))
    checksums = checksums if checksums is not None else paths.data_dir() / "checksums.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(dest)  # partial files of a download that was killed
    failures = []
    for url in urls:
        try:
            part, digest = _download_with_retries(url, dest, retries=retries, backoff=backoff, timeout=timeout)
        except _NETWORK_ERRORS as exc:
            failures.append(f"{url}: {_describe(exc)}")
            continue
        try:
            _verify(url, dest.name, digest, sha256, checksums)
            os.chmod(part, 0o644)
            os.replace(part, dest)
        finally:
            part.unlink(missing_ok=True)
        return dest
    heading = f"Could not download {dest.name} from any of these URLs (the last error of each):"
    raise DataError(_unavailable(dest, heading, failures))


def _offline() -> bool:
    return os.environ.get("RECBENCH_OFFLINE", "").strip().lower() in {"1", "true"}


def _download_with_retries(url: str, dest: Path, *, retries: int, backoff: float, timeout: float) -> tuple[Path, str]:
    """Download `url` to a temporary file beside `dest`, retrying transient errors; raise the last error."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return _download(url, dest, timeout)
        except _NETWORK_ERRORS as exc:
            kind = _classify(exc)
            # An unreachable host fails the same way again, so it gets one quick retry, without waiting.
            allowed = {"permanent": 1, "unreachable": min(retries, 2), "transient": retries}[kind]
            if attempt >= allowed:
                raise
            if kind == "transient":
                time.sleep(backoff * 2 ** (attempt - 1))


def _classify(exc: Exception) -> str:
    """'permanent' (try the next URL), 'unreachable' (no route to the host) or 'transient' (retry)."""
    if isinstance(exc, urllib.error.HTTPError):
        return "transient" if exc.code >= 500 or exc.code == 429 else "permanent"
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, (socket.gaierror, ConnectionRefusedError)):
        return "unreachable"
    if isinstance(reason, OSError) and reason.errno in _UNREACHABLE_ERRNOS:
        return "unreachable"
    return "transient"


def _download(url: str, dest: Path, timeout: float) -> tuple[Path, str]:
    """Stream `url` into a new temporary file beside `dest`; return it and its sha256."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        part = new_sibling(dest)  # created here: never a file or link that was already there
        try:
            with open(part, "wb") as out:
                digest = _stream(response, out, total, dest.name)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    return part, digest


def _stream(response: BinaryIO, out: BinaryIO, total: int | None, label: str) -> str:
    """Copy `response` to `out` with a progress bar; return the sha256 of what was copied."""
    digest = hashlib.sha256()
    received = 0
    with _progress() as progress:
        task = progress.add_task(label, total=total)
        while chunk := response.read(CHUNK_SIZE):
            out.write(chunk)
            digest.update(chunk)
            received += len(chunk)
            progress.update(task, advance=len(chunk))
    # http.client returns b"" rather than raising when the server closes before Content-Length.
    if total is not None and received != total:
        raise ConnectionError(f"the connection closed after {received} of {total} bytes")
    return digest.hexdigest()


def _progress() -> Progress:
    from ..progress import bar, counted

    return bar(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
               line=lambda task: counted(task, " bytes"), console=Console(stderr=True))


def _verify(url: str, name: str, actual: str, expected: str | None, checksums: Path) -> None:
    """Check `actual` against `expected`, or against the digest recorded for `name` (recording it if none is)."""
    if expected is not None:
        if actual != expected.lower():
            raise DataError(f"Checksum mismatch for {url}: expected sha256 {expected}, got {actual}.")
        return
    recorded = _read_checksums(checksums)
    if name not in recorded:
        _write_checksums(checksums, {**recorded, name: actual})
    elif recorded[name] != actual:
        raise DataError(
            f"Checksum mismatch for {url}: expected sha256 {recorded[name]} (recorded for {name} in "
            f"{checksums} at its first download), got {actual}. If the file changed upstream on purpose, "
            "delete that entry and download it again."
        )


def _read_checksums(checksums: Path) -> dict[str, str]:
    try:
        table = json.loads(checksums.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise DataError(f"{checksums} is not valid JSON ({exc}); expected {{file name: sha256}}. Fix or delete it.") from exc
    if not isinstance(table, dict):
        raise DataError(f"{checksums} holds a {type(table).__name__}; expected a JSON object {{file name: sha256}}.")
    return table


def _write_checksums(checksums: Path, table: dict[str, str]) -> None:
    """Write atomically: a temporary sibling file, renamed into place."""
    with replacing(checksums) as tmp, open(tmp, "w") as f:
        json.dump(table, f, indent=2, sort_keys=True)


def _describe(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


def _unavailable(dest: Path, heading: str, items: list[str]) -> str:
    """`heading`, the URLs (with their errors), and how to get the file by hand."""
    lines = [heading] + [f"  - {item}" for item in items]
    lines.append(
        f"To get it by hand, download it from one of these URLs and place it at {dest}, or put it in a "
        "folder and point RECBENCH_DATA_MIRROR at that folder (e.g. RECBENCH_DATA_MIRROR=../shared/data)."
    )
    return "\n".join(lines)
