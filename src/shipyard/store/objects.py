"""Files on any fsspec filesystem, written whole or not at all, and the one way a store URL is opened.

On a local disk a file is written under a temporary name beside it and renamed into place. An
object store (S3 and its kin: MinIO, SeaweedFS, R2) has no rename: s3fs's `mv` is a copy and a
delete, so the temporary object would be listed meanwhile and left behind by a crash. It has what
the rename gives instead: an object appears only when its one PUT, or its multipart upload's
completion, succeeds. So there the bytes go straight to the final key, in parts of `PART_BYTES`
once they outgrow one, and an upload that fails is aborted: no reader ever sees part of an object.

Credentials and the endpoint come from the usual AWS settings (`AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_S3`, `AWS_REGION`), which
botocore reads itself.
"""

from __future__ import annotations

import contextlib
from typing import Any

from shipyard.store.permissions import is_local

__all__ = ["PART_BYTES", "WholeFile", "open_url"]

#: S3's smallest part: an object larger than this is uploaded in parts (multipart upload).
PART_BYTES = 5 * 2**20

#: Protocols whose listings must not be cached (see `open_url`).
_OBJECT_STORES = ("s3", "s3a")


def open_url(url: str) -> tuple[Any, str]:
    """The fsspec filesystem and path of `url` (a local path or any fsspec URL).

    On S3, listings are not cached: other processes (replicas, serving workers, a batch job)
    add segments and parts under the same prefix, and s3fs's listing cache would hide them for
    the life of this process.
    """
    from fsspec.core import split_protocol, url_to_fs

    options = {"use_listings_cache": False} if split_protocol(url)[0] in _OBJECT_STORES else {}
    fs, path = url_to_fs(url, **options)
    return fs, path


class WholeFile:
    """A new file at `path` that readers see only once `commit` is called, whole.

    On a local disk it is written under a temporary name beside `path` (`.NAME.tmp`) and renamed
    onto it; on an object store it is uploaded to `path` itself and completed by `commit` (one
    PUT, or the multipart upload's completion), or aborted by `discard`.

    On a local disk the handle is Arrow's own file: Arrow's writers (Parquet, CSV) write through
    it without Python or the GIL in between.

    Args:
        fs: the filesystem.
        path: where the file goes.
    """

    def __init__(self, fs: Any, path: str) -> None:
        self.fs, self.path = fs, path
        self.local = is_local(fs)
        folder, name = path.rsplit("/", 1)
        # One temporary name per file: a writer killed mid-way leaves one, which the next
        # writer of the same file replaces.
        self.target = f"{folder}/.{name}.tmp" if self.local else path
        if self.local:
            import pyarrow as pa

            self.handle: Any = pa.OSFile(self.target, "wb")
        else:
            self.handle = fs.open(path, "wb", block_size=PART_BYTES)

    def commit(self) -> None:
        """Put the file in place: close it, then rename it (local) or complete its upload."""
        self.handle.close()
        if self.local:
            self.fs.mv(self.target, self.path)

    def discard(self) -> None:
        """Drop what was written: the temporary file (local) or the upload (object store)."""
        if self.local:
            self.handle.close()
            if self.fs.exists(self.target):
                self.fs.rm(self.target)
            return
        from fsspec.spec import AbstractBufferedFile

        if isinstance(self.handle, AbstractBufferedFile) and not self.handle.closed:
            self.handle.closed = True  # first: no later close (or __del__) may complete it
            # S3: abort the multipart upload (a lone PUT never started). Whether or not the
            # server hears it (it may be the thing that failed), an upload never completed is
            # never visible; the bucket's lifecycle rule for incomplete uploads frees its parts.
            with contextlib.suppress(Exception):
                self.handle.discard()
        # any other file is left unclosed: an fsspec file commits only when it is closed

    def __enter__(self) -> Any:
        return self.handle

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()
