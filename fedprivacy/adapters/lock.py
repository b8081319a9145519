"""An exclusive lock on an output directory (``simulate --out``), held for a run's lifetime.

Two runs writing the same clients' ledgers at once would interleave their lines and break every hash
chain, so a run takes ``<directory>/.fedprivacy.lock`` first. The lock is an advisory ``flock`` on
that file, which the kernel releases when the owner dies however it dies; the file also holds the
owner's pid, host and start time for the messages.

* Another live run holds it: :class:`DirectoryLocked` (names the pid and the lock file).
* The file is there but nobody holds it: the previous owner died (SIGKILL, power loss) without
  removing it. The new run takes it over and reports the stale owner (:attr:`OutputLock.stale`), so
  the caller can say so; the interrupted run's state is then checked client by client when it is
  loaded (:mod:`fedprivacy.accounting.recovery`).
* On release the file is removed.

Needs ``fcntl`` (POSIX). A lock file on a network file system that ignores ``flock`` locks nothing.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import FedPrivacyError

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["LOCK_FILE", "LockError", "DirectoryLocked", "OutputLock", "StaleOwner", "lock_directory"]

LOCK_FILE = ".fedprivacy.lock"


class LockError(FedPrivacyError):
    """The directory cannot be locked (it cannot be created, or is not a directory)."""


class DirectoryLocked(LockError):
    """Another live process holds the directory's lock."""

    def __init__(self, path: Path, owner: str) -> None:
        super().__init__(
            f"{path.parent} is in use by another run ({owner}; lock file {path}); wait for it to finish "
            "or use another --out directory"
        )
        self.path = path
        self.owner = owner


@dataclass(frozen=True)
class StaleOwner:
    """What the lock file said about a previous owner that is gone."""

    description: str


class OutputLock:
    """A held lock; release it with :meth:`release` or use it as a context manager."""

    def __init__(self, path: Path, fd: int, stale: StaleOwner | None) -> None:
        self.path = path
        self._fd: int | None = fd
        self.stale = stale

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)  # while still holding it: a waiting process re-checks the inode
        except FileNotFoundError:
            pass
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _describe(data: bytes) -> str:
    try:
        owner = json.loads(data.decode())
        return f"process {int(owner['pid'])} on {owner['host']}, started {owner['started']}"
    except Exception:  # noqa: BLE001 -- the file is only informative
        return "an unknown process (the lock file is unreadable)"


def lock_directory(directory: str | os.PathLike[str]) -> OutputLock:
    """Take ``directory``'s lock (creating the directory and its lock file); :class:`DirectoryLocked` if a
    live process holds it. A stale lock file is taken over and reported in ``OutputLock.stale``."""
    import fcntl

    path = Path(directory) / LOCK_FILE
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LockError(f"cannot use {directory} as an output directory: {exc.strerror or exc}") from None
    for _ in range(100):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise LockError(f"cannot create the lock file {path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with os.fdopen(os.dup(fd), "rb") as handle:
                owner = _describe(handle.read(4096))
            os.close(fd)
            raise DirectoryLocked(path, owner) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            if os.fstat(fd).st_ino != os.stat(path).st_ino:
                os.close(fd)  # the holder removed it between our open and our lock: try again
                continue
        except FileNotFoundError:
            os.close(fd)
            continue
        previous = os.pread(fd, 4096, 0)
        stale = StaleOwner(_describe(previous)) if previous else None
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record, sort_keys=True) + "\n").encode(), 0)
        os.fsync(fd)
        return OutputLock(path, fd, stale)
    raise DirectoryLocked(path, "a process that keeps re-creating the lock file")
