"""Writing a large output file without going through the page cache.

A merge writes gigabytes once and never reads them back in the same process.
Through the page cache every byte costs a kernel copy, and once the dirty
pages pile up the kernel throttles the writer: on a 2-core machine that copy
takes a whole core for most of the merge. With ``O_DIRECT`` the disk reads
the data straight from our buffers, so the CPU stays with the maths.

``O_DIRECT`` needs block-aligned buffers, sizes and offsets. Bytes are copied
into page-aligned buffers (anonymous mmaps) and written in whole buffers by a
background thread while the next one fills; the unaligned tail is written
after switching ``O_DIRECT`` off again. Where the file system refuses
``O_DIRECT`` (tmpfs on older kernels, some network and overlay mounts) the
file is written the ordinary way, with the same bytes.
"""
from __future__ import annotations

import errno
import fcntl
import mmap
import os
import threading

from .safetensors_io import write_all

_ALIGN = 4096  # a multiple of every logical block size in use
BUFFER_BYTES = 8 << 20


class DirectFileWriter:
    """Append-only writes to ``fd`` (at offset 0, just created), O_DIRECT where possible."""

    def __init__(self, fd: int, buffer_bytes: int = BUFFER_BYTES) -> None:
        self._fd = fd
        # Only a fresh regular file starts aligned; anything else is written plainly.
        try:
            at_start = os.lseek(fd, 0, os.SEEK_CUR) == 0
        except OSError:  # a pipe or socket
            at_start = False
        self.direct = at_start and _set_direct(fd, True)
        self._buffers: list[mmap.mmap] = []
        self._fill = 0
        self._error: BaseException | None = None
        self._pending: memoryview | None = None
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        if self.direct:
            self._buffers = [mmap.mmap(-1, buffer_bytes), mmap.mmap(-1, buffer_bytes)]
            self._views = [memoryview(b) for b in self._buffers]
            self._current = 0
            self._thread = threading.Thread(target=self._run, name="merge-writer", daemon=True)
            self._thread.start()

    # ---- the caller's side ----------------------------------------------------------------
    def write(self, view: memoryview) -> None:
        if not self.direct:
            write_all(self._fd, view)
            return
        view = view.cast("B") if view.format != "B" else view
        size = len(self._views[0])
        while len(view):
            buf = self._views[self._current]
            n = min(size - self._fill, len(view))
            buf[self._fill : self._fill + n] = view[:n]
            self._fill += n
            view = view[n:]
            if self._fill == size:
                self._hand_over(buf)

    def close(self) -> None:
        """Write what is left and wait for the disk; the file then holds every byte written."""
        if not self.direct:
            return
        buf = self._views[self._current]
        aligned = self._fill - self._fill % _ALIGN
        head = buf[:aligned]
        try:
            if aligned:
                self._hand_over(head, switch=False)
            self._stop()
        finally:
            head.release()  # an exported slice would keep the mmap from closing
        if self._fill > aligned:
            _set_direct(self._fd, False)
            with buf[aligned : self._fill] as tail:
                write_all(self._fd, tail)
        self._release()

    def abort(self) -> None:
        if self.direct:
            self._stop(raise_error=False)
            self._release()

    # ---- the writer thread ---------------------------------------------------------------
    def _hand_over(self, view: memoryview, switch: bool = True) -> None:
        with self._cond:
            while self._pending is not None and self._error is None:
                self._cond.wait()
            if self._error is not None:
                raise self._error
            self._pending = view
            self._cond.notify_all()
        if switch:
            self._current ^= 1
            self._fill = 0

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._pending is None:
                    return
                view = self._pending
            try:
                self._write_direct(view)
            except BaseException as exc:  # reported to the caller at its next hand-over or close
                # Its traceback would keep slices of our buffers alive (and the mmaps open).
                exc.__traceback__ = None
                del view
                with self._cond:
                    self._error = exc
                    self._pending = None
                    self._cond.notify_all()
                return
            with self._cond:
                self._pending = None
                self._cond.notify_all()

    def _write_direct(self, view: memoryview) -> None:
        done = 0
        while done < len(view):
            try:
                done += os.write(self._fd, view[done:])
            except OSError as exc:
                # Accepted by fcntl but refused on write (some overlay/network
                # mounts, or a short write left the rest misaligned): go on
                # without O_DIRECT from the first byte not yet written.
                if exc.errno != errno.EINVAL or not _set_direct(self._fd, False):
                    raise
                write_all(self._fd, view[done:])
                return

    def _stop(self, raise_error: bool = True) -> None:
        with self._cond:
            while self._pending is not None and self._error is None:
                self._cond.wait()
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        if raise_error and self._error is not None:
            raise self._error

    def _release(self) -> None:
        for v in getattr(self, "_views", []):
            v.release()
        for b in self._buffers:
            try:
                b.close()
            except BufferError:  # a view is still referenced somewhere; the GC frees it with the view
                pass
        self._buffers = []
        self._views = []


def _set_direct(fd: int, on: bool) -> bool:
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return False
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, (flags | flag) if on else (flags & ~flag))
    except OSError:
        return False
    return True
