"""A request body streamed to a temporary file, never held whole in memory.

Files are named ``upload-<worker pid>-<random>.edf`` in ``ECG_RECORDING_TMP_DIR``. The
request removes its file when it ends, whatever happens; a worker killed mid-request
(SIGKILL, the out-of-memory killer) cannot, so every worker sweeps the folder when it
starts and before each upload: a file whose worker process is gone is removed.
"""

import contextlib
import os
import re
import shutil
import uuid
from pathlib import Path

from flask import request
from flask_smorest import abort
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser

COPY_BLOCK_BYTES = 1024 * 1024  # the body goes to disk in blocks of this size
FORM_FIELD_BYTES = 1024 * 1024  # a form's text fields, and werkzeug's 64-KB read buffer, hold at most this in memory
UPLOAD_NAME = re.compile(r"upload-(\d+)-[0-9a-f]{32}\.edf")
OCTET_TYPES = ("application/octet-stream", "application/edf", "application/x-edf")


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def sweep(tmp_dir):
    """Remove the uploads in ``tmp_dir`` left by worker processes that no longer exist.

    Returns how many were removed.
    """
    removed = 0
    folder = Path(tmp_dir)
    if not folder.is_dir():
        return 0
    for path in folder.iterdir():
        m = UPLOAD_NAME.fullmatch(path.name)
        if m and not _alive(int(m.group(1))):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
    return removed


def _new_path(tmp_dir):
    folder = Path(tmp_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder / f"upload-{os.getpid()}-{uuid.uuid4().hex}.edf"


def _too_large(limit):
    abort(413, detail=f"The recording is over the {limit / 1024 / 1024:g} MB limit (ECG_MAX_RECORDING_MB).")


@contextlib.contextmanager
def received_file(tmp_dir, limit):
    """The request's file on disk (its path), removed when the block ends.

    The body is the file itself (``application/octet-stream``) or the ``file`` part of
    ``multipart/form-data``. 413 past ``limit`` bytes, 415 for another content type,
    422 for an empty file, 400 for a form without a ``file`` part.
    """
    sweep(tmp_dir)
    request.max_content_length = limit  # this view's own limit, not the JSON endpoints'
    paths = []
    try:
        mimetype = request.mimetype
        if mimetype == "multipart/form-data":
            path = _receive_form(tmp_dir, limit, paths)
        elif mimetype in OCTET_TYPES or not mimetype:
            path = _new_path(tmp_dir)
            paths.append(path)
            with open(path, "wb") as f:
                shutil.copyfileobj(request.stream, f, COPY_BLOCK_BYTES)
        else:
            abort(415, detail="Send the EDF file as application/octet-stream, or as the 'file' "
                              f"part of multipart/form-data (got {mimetype}).")
        if path.stat().st_size == 0:  # a file, empty: unprocessable, as any other non-EDF file
            abort(422, detail="The file is empty: send one EDF or EDF+ file.")
        yield path
    except RequestEntityTooLarge:
        _too_large(limit)
    finally:
        for p in paths:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


def _receive_form(tmp_dir, limit, paths):
    """The ``file`` part of a multipart body, written straight to a file of ``paths``."""
    def to_disk(*_args, **_kwargs):
        path = _new_path(tmp_dir)
        paths.append(path)
        return open(path, "w+b")

    parser = FormDataParser(stream_factory=to_disk, max_content_length=limit,
                            max_form_memory_size=FORM_FIELD_BYTES, silent=False)
    try:
        _, _, files = parser.parse(request.stream, request.mimetype, request.content_length,
                                   request.mimetype_params)
    except ValueError as exc:  # a malformed multipart body
        abort(400, detail=f"Malformed multipart/form-data body: {exc}")
    for storage in files.values():
        storage.stream.close()
    if "file" not in files:
        abort(400, detail="The multipart/form-data body has no 'file' part: send the EDF file "
                          f"as the 'file' field (got {', '.join(map(repr, files)) or 'no file'}).")
    return Path(files["file"].stream.name)
