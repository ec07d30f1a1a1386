"""Writing a large output file without going through the page cache.

A merge writes gigabytes once and never reads them back in the same process.
Through the page cache every byte costs a kernel copy, and once the dirty
pages pile up the kernel throttles the writer: on a 2-core machine that copy
takes a whole core for most of the merge. With ``O_DIRECT`` the disk reads
the data straight from our buffers, so the CPU stays with the maths.

``O_DIRECT`` needs block-aligned buffers, sizes and offsets. Bytes are copied
into page-aligned buffers (anonymous mmaps) and written in whole buffers by a
background thread while the next ones fill; the unaligned tail is written
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
from collections import deque

from .safetensors_io import write_all

_ALIGN = 4096  # a multiple of every logical block size in use
BUFFER_BYTES = 8 << 20
# Buffers in the ring: one being filled, the rest queued for or in the disk.
# The compute runs in bursts (a big key, then many small ones) while the disk
# drains at a steady rate; a few buffers of slack keep it busy through a burst.
BUFFERS = 4


class DirectFileWriter:
    """Append-only writes to ``fd`` (at offset 0, just created), O_DIRECT where possible."""

    def __init__(self, fd: int, buffer_bytes: int = BUFFER_BYTES, buffers: int = BUFFERS) -> None:
        self._fd = fd
        # Only a fresh regular file starts aligned; anything else is written plainly.
        try:
            at_start = os.lseek(fd, 0, os.SEEK_CUR) == 0
        except OSError:  # a pipe or socket
            at_start = False
        self.direct = at_start and _set_direct(fd, True)
        self._buffers: list[mmap.mmap] = []
        self._views: list[memoryview] = []
        self._fill = 0
        self._error: BaseException | None = None
        # (buffer index, bytes to write) handed to the writer thread, oldest
        # first; None asks it to stop.
        self._full: deque[tuple[int, memoryview] | None] = deque()
        self._free: deque[int] = deque()  # indices of buffers ready to fill
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        if self.direct:
            self._buffers = [mmap.mmap(-1, buffer_bytes) for _ in range(max(2, buffers))]
            self._views = [memoryview(b) for b in self._buffers]
            self._free.extend(range(1, len(self._buffers)))
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
                self._hand_over(self._current, buf)
                self._current = self._next_free()
                self._fill = 0

    def close(self) -> None:
        """Write what is left and wait for the disk; the file then holds every byte written."""
        if not self.direct:
            return
        buf = self._views[self._current]
        aligned = self._fill - self._fill % _ALIGN
        head = buf[:aligned]
        try:
            if aligned:
                self._hand_over(self._current, head)
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
            with self._cond:
                # Only the buffer being written (if any) is finished; the rest
                # would be written to a file about to be deleted.
                while len(self._full) > 1:
                    self._full.pop()
            self._stop(raise_error=False)
            self._release()

    # ---- the writer thread ---------------------------------------------------------------
    def _hand_over(self, index: int, view: memoryview) -> None:
        with self._cond:
            if self._error is not None:
                raise self._error
            self._full.append((index, view))
            self._cond.notify_all()

    def _next_free(self) -> int:
        with self._cond:
            while not self._free and self._error is None:
                self._cond.wait()
            if self._error is not None:
                raise self._error
            return self._free.popleft()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._full:
                    self._cond.wait()
                entry = self._full[0]
            if entry is None:
                return
            index, view = entry
            del entry
            try:
                self._write_direct(view)
            except BaseException as exc:  # reported to the caller at its next hand-over or close
                # Its traceback (and that of the error it was raised while
                # handling) would keep slices of our buffers alive, and the mmaps open.
                exc.__traceback__ = None
                exc.__context__ = exc.__cause__ = None
                del view
                with self._cond:
                    self._error = exc
                    self._full.clear()
                    self._cond.notify_all()
                return
            del view
            with self._cond:
                self._full.popleft()
                self._free.append(index)
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
            if self._error is None:
                self._full.append(None)
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        if raise_error and self._error is not None:
            raise self._error

    def _release(self) -> None:
        self._full.clear()
        for v in self._views:
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
