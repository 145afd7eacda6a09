"""The single writer of a log directory, with group commit (the format is in ``rvz.log.format``).

Durability
----------
``LogWriter.append`` writes each record with one ``os.write`` (so it survives a crash of this process
once it returns) and never syncs. A sync thread ``fdatasync``s in batches and reports the highest
durable sequence number to listeners. After a crash ``LogWriter.start`` truncates a torn or corrupt
tail of the last segment.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rvz.errors import LogError, LogLockedError
from rvz.log.format import DAMAGED_DIR, LOCK_NAME, Damage, Segment, frame, header, list_segments

logger = logging.getLogger(__name__)

# After a failed fdatasync the next try waits this long, doubling up to the maximum.
SYNC_RETRY_S = 0.05
SYNC_RETRY_MAX_S = 1.0


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


def _write_problem(directory: Path, error: OSError) -> str:
    """What a failed write means, in the words an operator acts on."""
    if error.errno == errno.ENOSPC:
        return f"no space left on {directory}"
    if error.errno == errno.EDQUOT:
        return f"disk quota exceeded on {directory}"
    return f"cannot write to {directory}: {error.strerror or error}"


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
        self._header = header(record_type)
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
        self._sync_retry_s = 0.0
        # Failures so far: fdatasync calls that failed (retried), records whose write failed (refused).
        self.sync_errors = 0
        self.failed_appends = 0
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
            self._open_new_segment(0)
            return
        path = segments[-1]
        self._segment = int(path.name.removesuffix(".seg"))
        with Segment(path) as segment:
            appendable = self._recover(segment)
        if not appendable:
            self._open_new_segment(self._segment + 1)
            return
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._segment_size = os.fstat(self._fd).st_size
        if self._segment_size == 0:
            _write_all(self._fd, self._header)  # a header cut short by a crash, written again
            self._segment_size = len(self._header)
            os.fsync(self._fd)

    def _open_new_segment(self, number: int) -> None:
        self._segment = number
        self._fd = self._create_segment(number)
        os.fsync(self._fd)
        _fsync_dir(self.directory)

    def _recover(self, segment: Segment) -> bool:
        """Make the last segment safe to append to; False when a new segment must be started instead.

        Only a damaged tail (no intact record after it: what a crash during a write leaves) is cut off,
        after its bytes are copied into DIR/damaged/. Damage with intact records after it stays where it
        is: readers skip it. Raises LogError when the segment holds another record type.
        """
        if segment.record_type not in (None, self.record_type):
            raise LogError(f"log {self.directory} holds {segment.record_type} records, not {self.record_type}; "
                           "use another directory")
        if segment.record_type is None:
            if segment.is_prefix_of(self._header):  # created, then cut short before its header was complete
                logger.warning("%s: rewriting a segment header cut short (%d bytes)", segment.path, segment.size)
                os.truncate(segment.path, 0)
                return True
            logger.warning("%s: %s; leaving it as it is and starting a new segment", segment.path,
                           segment.header_problem)
            return False
        if segment.version != 2:
            return False  # format 1 is read, never appended to
        last = None
        for entry in segment.entries():
            if isinstance(entry, Damage):
                last = entry
                if not entry.torn:
                    logger.warning("kept %s: readers skip it", entry.describe())
        if last is not None and last.torn:
            self._cut_tail(segment, last)
        return True

    def _cut_tail(self, segment: Segment, tail: Damage) -> None:
        aside = self.directory / DAMAGED_DIR / f"{segment.path.name}.{tail.start}-{tail.end}.bin"
        aside.parent.mkdir(exist_ok=True)
        with open(segment.path, "rb") as f:
            f.seek(tail.start)
            aside.write_bytes(f.read(tail.size))
        fd = os.open(aside, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.truncate(segment.path, tail.start)
        logger.warning("cut %s; its bytes are kept in %s", tail.describe(), aside)

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
                self.failed_appends += len(payloads)
                raise LogError(_write_problem(self.directory, e)) from e
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
                if new_segment:
                    with self._cond:
                        self._new_segment = True  # the directory's fsync is done again too
                if self.closed:
                    logger.error("log %s: stopping with records %d-%d written but not synced (%s)",
                                 self.directory, self._durable_seq + 1, target, e.strerror or e)
                    return
                self._sync_failed(e)
                continue
            self._sync_recovered()
            self._report(target)

    def _sync_failed(self, error: OSError) -> None:
        """Keep what could not be synced for the next try, after a pause that grows to SYNC_RETRY_MAX_S.

        Appends go on meanwhile (each write still survives a crash of this process); durable_seq does not
        move, so whoever waits for durability waits (the frontend bounds that wait by each call's deadline).
        """
        self.sync_errors += 1
        if self._sync_error is None:
            logger.error("log %s: fdatasync failed (%s); retrying, records since the last sync are not yet "
                         "durable", self.directory, error.strerror or error)
        self._sync_error = error
        self._sync_retry_s = min(SYNC_RETRY_MAX_S, self._sync_retry_s * 2 if self._sync_retry_s else SYNC_RETRY_S)
        self._closing.wait(self._sync_retry_s)

    def _sync_recovered(self) -> None:
        if self._sync_error is not None:
            logger.warning("log %s: fdatasync works again after %d failures", self.directory, self.sync_errors)
            self._sync_error = None
        self._sync_retry_s = 0.0

    def _commit(self, current: int, retiring: list[int], new_segment: bool) -> None:
        """Make everything written to these fds durable; runs without the lock so appends go on."""
        started = time.monotonic()
        while retiring:
            if self._fsync:
                try:
                    os.fdatasync(retiring[0])
                except OSError:
                    with self._cond:  # synced again on the next try, before anything newer
                        self._retiring[:0] = retiring
                    raise
            os.close(retiring.pop(0))
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
