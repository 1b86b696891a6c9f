"""The image files of a folder: finding them, their change stamps, reading and decoding them.

A folder is walked recursively (hidden files and folders, whose names start with ``.``, are left
out; links to folders are not followed). An image is any file whose extension is one of
:data:`infomax.data.IMAGE_EXTENSIONS`, in any case. Each file is read once: its bytes give both a
content digest (BLAKE2b) and the decoded image, so a renamed or copied file is recognised by its
content without decoding it again.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np

from infomax.data import IMAGE_EXTENSIONS, decode_image

__all__ = ["FileStamp", "ReadResult", "digest_bytes", "list_images", "read_images"]


class FileStamp(NamedTuple):
    """An image file under a folder: its path relative to the folder (POSIX separators), size in
    bytes and modification time in nanoseconds."""

    path: str
    size: int
    mtime_ns: int


class ReadResult(NamedTuple):
    """One file read and decoded: ``image`` is uint8 ``(H, W, C)``, or ``None`` with ``error``
    saying why the file could not be used."""

    path: str
    digest: str | None
    image: np.ndarray | None
    error: str | None


def digest_bytes(data: bytes) -> str:
    """The content digest of a file's bytes (BLAKE2b, 20 bytes, hex)."""
    return hashlib.blake2b(data, digest_size=20).hexdigest()


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def list_images(folder: str | os.PathLike) -> list[FileStamp]:
    """Every image file under ``folder`` (recursively), sorted by relative path."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder: {str(root)!r}")
    found: list[FileStamp] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel_dir = Path(dirpath).relative_to(root)
        for name in filenames:
            if not _is_image_name(name):
                continue
            full = os.path.join(dirpath, name)
            try:
                st = os.stat(full)
            except OSError:  # vanished, or a dangling link
                continue
            if not os.path.isfile(full):
                continue
            found.append(FileStamp((rel_dir / name).as_posix(), st.st_size, st.st_mtime_ns))
    found.sort(key=lambda f: f.path)
    return found


def read_image(
    root: Path, rel: str, image_size: int | None, mode: str, known: frozenset[str] = frozenset()
) -> ReadResult:
    """Read ``root/rel``, take its digest and, unless the digest is in ``known``, decode it with
    :func:`infomax.data.decode_image` (JPEG draft decoding, EXIF orientation applied)."""
    try:
        data = (root / rel).read_bytes()
    except OSError as exc:
        return ReadResult(rel, None, None, f"cannot read the file: {exc.strerror or exc}")
    digest = digest_bytes(data)
    if digest in known:
        return ReadResult(rel, digest, None, None)
    try:
        image = decode_image(
            io.BytesIO(data), image_size, mode=mode, draft=True, exif_transpose=True
        )
    except ValueError as exc:
        return ReadResult(rel, digest, None, _reason(exc))
    return ReadResult(rel, digest, image, None)


def _reason(exc: ValueError) -> str:
    """Why PIL could not decode a file, without the repr of the in-memory buffer."""
    from PIL import UnidentifiedImageError

    cause = exc.__cause__ or exc
    if isinstance(cause, UnidentifiedImageError):
        return "not an image file, or damaged beyond recognition"
    return f"damaged or unsupported ({type(cause).__name__}: {cause})"


def read_images(
    root: str | os.PathLike,
    paths: Sequence[str],
    image_size: int | None,
    mode: str = "RGB",
    known: frozenset[str] = frozenset(),
    workers: int | None = None,
    chunk: int = 256,
) -> Iterator[list[ReadResult]]:
    """Read and decode ``paths`` (relative to ``root``) in a pool of threads, yielding lists of
    up to ``chunk`` results in order. The next chunk is decoded while the caller works on the
    current one (PIL releases the GIL while it decodes), and at most two chunks are held."""
    root = Path(root)
    workers = workers or min(8, os.cpu_count() or 1)
    starts = range(0, len(paths), chunk)
    with ThreadPoolExecutor(workers) as pool:

        def submit(start: int) -> list[Future]:
            return [
                pool.submit(read_image, root, p, image_size, mode, known)
                for p in paths[start : start + chunk]
            ]

        pending = submit(0) if len(paths) else []
        for start in starts:
            current = pending
            nxt = start + chunk
            pending = submit(nxt) if nxt < len(paths) else []
            yield [f.result() for f in current]
