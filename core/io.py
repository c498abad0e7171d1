"""Atomic file writes: a reader never sees half a file, and a crash never leaves one behind; and what to say when a
folder cannot be written (read-only, full)."""

from __future__ import annotations

import errno
import io
import json
import os
import tempfile
from pathlib import Path

# a disk that filled, turned read-only or reached its quota
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT})


def unwritable(folder: Path) -> str | None:
    """Why files cannot be created in `folder` (an existing folder; "is ..."), or None when they can."""
    if os.access(folder, os.W_OK | os.X_OK):
        return None
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "is on a read-only file system"
    except (OSError, AttributeError):  # no statvfs on Windows
        pass
    return "is not writable by this user (permission denied)"


def describe_os_error(e: OSError) -> str:
    """'PATH: strerror (ENOSPC)' for a file-system error, in one line."""
    code = errno.errorcode.get(e.errno, "") if e.errno is not None else ""
    text = f"{e.strerror or e}" + (f" ({code})" if code else "")
    return f"{e.filename}: {text}" if e.filename is not None else text


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over the target."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and e.filename is None:  # a full disk fails write() or fsync(), unnamed
            e.filename = str(path)
        raise


def link_atomic(src: Path, dst: Path) -> None:
    """Make `dst` another name of `src` (a hard link, or a copy where links are not supported), atomically."""
    import shutil

    tmp = Path(dst).with_name(f".{Path(dst).name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:  # a full disk: no half copy is left behind
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n").encode())


def atomic_torch_save(path: Path, obj) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def atomic_savez(path: Path, **arrays) -> None:
    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def _json_default(obj):
    import numpy as np

    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def json_line(obj) -> str:
    """One compact JSON line; NaN and infinities become null so every reader can parse it."""
    return json.dumps(_finite(obj), separators=(",", ":"), default=_json_default) + "\n"


def _finite(obj):
    import math

    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
