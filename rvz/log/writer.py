"""The single writer of a log directory, with group commit (the format is in ``rvz.log.format``).

Durability
----------
``LogWriter.append`` writes each record with one ``os.write`` (so it survives a crash of this process
once it returns) and never syncs. A sync thread ``fdatasync``s in batches and reports the highest
durable sequence number to listeners. After a crash ``LogWriter.start`` truncates a torn or corrupt
tail of the last segment.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rvz.errors import LogError, LogLockedError
from rvz.log.format import LOCK_NAME, MAGIC, frame, good_end, list_segments

logger = logging.getLogger(__name__)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written == 0:
            raise OSError(f"os.write wrote nothing ({len(view)} bytes left)")
        view = view[written:]


def _take_lock(directory: Path) -> int:
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise LogLockedError(
            f"log {directory} is locked by another writer (pid {holder}); stop that process "
            "or use another directory"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _release_lock(fd: int) -> None:
    os.ftruncate(fd, 0)  # an empty LOCK file tells a human nobody holds it
    os.close(fd)


class LogWriter:
    """The single writer of a log directory; see the module docstring for the format."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        record_type: str,
        *,
        segment_bytes: int = 64 * 1024 * 1024,
        fsync: bool = True,
        sync_delay_s: float = 0.0,
    ) -> None:
        self.directory = Path(directory)
        # How long the sync thread lets appends gather before each fdatasync. 0: sync at once (callers
        # wait for durability); more: fewer syncs and thread wake-ups, for logs nobody waits on.
        self._sync_delay_s = sync_delay_s
        self._closing = threading.Event()
        self.record_type = record_type
        self._segment_bytes = segment_bytes
        self._fsync = fsync
        self._header = MAGIC + frame(record_type.encode("utf-8"))
        self._cond = threading.Condition(threading.Lock())
        self._listeners: tuple[Callable[[int], None], ...] = ()
        self._thread: threading.Thread | None = None
        self._lock_fd = -1
        self._fd = -1
        self._segment = 0
        self._segment_size = 0
        self._retiring: list[int] = []  # rotated-out fds the sync thread must sync before closing
        self._new_segment = False  # the directory needs an fsync before reporting durability
        self._appended_seq = 0
        self._durable_seq = 0
        # True while the sync thread waits for work; appends notify only then.
        self._sync_idle = False
        self._sync_error: OSError | None = None
        self.started = False
        self.closed = False
        self.bytes_written = 0
        self.fsync_count = 0
        self.last_fsync_seconds = 0.0

    @property
    def durable_seq(self) -> int:
        return self._durable_seq

    def add_durable_listener(self, callback: Callable[[int], None]) -> None:
        with self._cond:
            self._listeners = (*self._listeners, callback)

    def __enter__(self) -> LogWriter:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        if self.closed:
            raise LogError(f"log {self.directory} is closed; create a new LogWriter")
        if self.started:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _take_lock(self.directory)
        try:
            self._open_last_segment()
        except BaseException:
            _release_lock(self._lock_fd)
            raise
        self._thread = threading.Thread(
            target=self._sync_loop, name=f"rvz-log-sync:{self.directory.name}", daemon=True
        )
        self._thread.start()
        self.started = True

    def _open_last_segment(self) -> None:
        segments = list_segments(self.directory)
        if not segments:
            self._fd = self._create_segment(0)
            os.fsync(self._fd)
            _fsync_dir(self.directory)
            return
        path = segments[-1]
        self._segment = int(path.name.removesuffix(".seg"))
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            self._recover(path)
        except BaseException:
            os.close(self._fd)
            raise

    def _recover(self, path: Path) -> None:
        """Cut a torn or corrupt tail off the last segment, which a crash may have left behind."""
        record_type, end, problem = good_end(path)
        if record_type is not None and record_type != self.record_type:
            raise LogError(
                f"log {self.directory} holds {record_type} records, not {self.record_type}; "
                "use another directory"
            )
        size = os.fstat(self._fd).st_size
        if end < size:
            logger.warning("dropping %d bytes at the end of %s (%s)", size - end, path, problem)
            os.ftruncate(self._fd, end)
        if record_type is None:
            _write_all(self._fd, self._header)
            self.bytes_written += len(self._header)
            end = len(self._header)
        if end < size or record_type is None:
            os.fsync(self._fd)
        self._segment_size = end

    def _create_segment(self, number: int) -> int:
        path = self.directory / f"{number:020d}.seg"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            _write_all(fd, self._header)
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)  # a torn header would make every later rotation fail with EEXIST
            raise
        self._segment_size = len(self._header)
        self.bytes_written += len(self._header)
        return fd

    def append(self, payload: bytes) -> int:
        """Write one record; when this returns it survives a crash of this process (not of the host)."""
        return self.append_many((payload,))

    def append_many(self, payloads: Sequence[bytes]) -> int:
        """Write records with one write() (a batch may overrun the segment size); returns the last's seq."""
        data = b"".join([frame(payload) for payload in payloads])
        with self._cond:
            self._check_writable()
            try:
                if self._segment_size >= self._segment_bytes:
                    self._rotate()
                _write_all(self._fd, data)
            except OSError as e:
                self._undo_partial_write()
                raise LogError(f"cannot append to log {self.directory}: {e}") from e
            self._segment_size += len(data)
            self.bytes_written += len(data)
            self._appended_seq += len(payloads)
            if self._sync_idle:  # wake the sync thread only when it sleeps: notify costs GIL hand-offs
                self._sync_idle = False
                self._cond.notify()
            return self._appended_seq

    def _check_writable(self) -> None:
        if self.closed:
            raise LogError(f"log {self.directory} is closed")
        if not self.started:
            raise LogError(f"log {self.directory} is not started; call start() first")
        if self._sync_error is not None:
            raise LogError(f"log {self.directory} failed to sync: {self._sync_error}")

    def _rotate(self) -> None:
        # Create the new segment first so a failure leaves the writer on the old one.
        fd = self._create_segment(self._segment + 1)
        self._retiring.append(self._fd)
        self._fd = fd
        self._segment += 1
        self._new_segment = True

    def _undo_partial_write(self) -> None:
        # A half-written frame followed by later records would hide them from readers.
        try:
            os.ftruncate(self._fd, self._segment_size)
        except OSError:
            logger.exception("cannot cut a partial record off log %s", self.directory)

    def _sync_loop(self) -> None:
        while True:
            with self._cond:
                while self._appended_seq <= self._durable_seq and not self.closed:
                    self._sync_idle = True
                    self._cond.wait()
                self._sync_idle = False
                if self._appended_seq <= self._durable_seq:
                    return
            if self._sync_delay_s and self._fsync:
                self._closing.wait(self._sync_delay_s)  # let appends gather; stop() cuts this short
            with self._cond:
                target, current, retiring = self._appended_seq, self._fd, self._retiring
                new_segment, self._retiring, self._new_segment = self._new_segment, [], False
            try:
                self._commit(current, retiring, new_segment)
            except OSError as e:
                logger.critical("log %s: sync failed, appends will fail: %s", self.directory, e)
                with self._cond:
                    self._sync_error = e
                return
            self._report(target)

    def _commit(self, current: int, retiring: list[int], new_segment: bool) -> None:
        """Make everything written to these fds durable; runs without the lock so appends go on."""
        started = time.monotonic()
        for fd in retiring:
            try:
                if self._fsync:
                    os.fdatasync(fd)
            finally:
                os.close(fd)
        if not self._fsync:
            return
        os.fdatasync(current)
        if new_segment:
            _fsync_dir(self.directory)
        self.fsync_count += 1
        self.last_fsync_seconds = time.monotonic() - started

    def _report(self, seq: int) -> None:
        with self._cond:
            self._durable_seq = seq
            listeners = self._listeners
        for callback in listeners:
            try:
                callback(seq)
            except Exception:
                logger.exception("durable listener %r of log %s failed", callback, self.directory)

    def stop(self, timeout: float = 5.0) -> None:
        """Sync everything appended, then close the segment and release the lock."""
        with self._cond:
            if self.closed:
                return
            self.closed = True
            self._closing.set()
            self._cond.notify()
        if not self.started:
            return
        assert self._thread is not None
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning("log %s: sync thread still running after %.1fs", self.directory, timeout)
        with self._cond:
            fds, self._retiring = [*self._retiring, self._fd], []
        for fd in fds:
            os.close(fd)
        _release_lock(self._lock_fd)
