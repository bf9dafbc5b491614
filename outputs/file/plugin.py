"""``output.file``: one event per line, Beats' JSON codec, size-based rotation.

Files are ``<filename>-<yyyymmdd>.ndjson``, then ``<filename>-<yyyymmdd>-1.ndjson``, ``-2``, ...
as they rotate (Beats 8.x naming); at most ``number_of_files`` are kept (oldest deleted; the
events this run wrote into a deleted file are counted in ``events.rotated_away``).

An event is acknowledged once its whole line is handed to the kernel (``write``; no fsync, as
Beats). A write that fails part-way acks the lines that are in the file and drops the rest
(counted, not retried, as Beats); a torn last line is cut back, then or when the file is next
opened. Before each batch the file is checked (same inode at the same path): a removed file or
folder is recreated, with a warning. Files are ``permissions`` (0600), folders 0700.
"""

from __future__ import annotations

import os
import re
import threading
import time
from typing import Any

from pydantic import Field, field_validator

from pybeat.api import (
    Batch, Codec, CodecConfig, Event, OutputContext, OutputGroup, PluginConfig, PluginSetupError, RetryPolicy,
)


class FileOutputConfig(PluginConfig):
    enabled: bool = True
    path: str = Field(default="", description="directory for the files (default: path.data)")
    filename: str = ""
    rotate_every_kb: int = Field(default=10240, ge=1)
    number_of_files: int = Field(default=7, ge=2, le=1024)
    permissions: int = 0o600
    rotate_on_startup: bool = True
    codec: CodecConfig | None = None
    bulk_max_size: int | None = None

    @field_validator("path")
    @classmethod
    def _no_time_pattern(cls, v: str) -> str:
        if "%{" in v:
            raise ValueError("time patterns such as %{+yyyy.MM.dd} in path are not supported yet; give a plain directory")
        return v

    @field_validator("permissions", mode="before")
    @classmethod
    def _octal(cls, v: int | str) -> int:
        if isinstance(v, str):
            try:
                return int(v, 8)
            except ValueError as exc:
                raise ValueError(f"expected an octal file mode such as 0600, got {v!r}") from exc
        return v


class FileOutput:
    def __init__(self, config: FileOutputConfig, ctx: OutputContext):
        self.config = config
        self.codec = Codec(ctx.beat, config.codec)
        self.dir = config.path or ctx.paths.data
        # In a run split across processes each writes its own files (<filename>-w<i>-...).
        self.name = (config.filename or ctx.beat.beat) + (ctx.shard.suffix if ctx.shard else "")
        self.limit = config.rotate_every_kb * 1024
        self.logger = ctx.logger
        bind = getattr(ctx.logger, "bind", None)  # -d file: its debug lines (a structlog-style bind)
        self.debug_log = bind(logger="file") if bind is not None else None
        self.written = 0
        self.encode_errors = 0
        self.write_errors = 0
        self.rotated_away = 0  # events this run wrote into files that rotation deleted
        self.removed_externally = 0  # events this run wrote into files someone else removed
        self.recreated = 0
        self.torn_cut = 0
        self._file_events: dict[str, int] = {}  # path -> events this run wrote into it
        self._lock = threading.Lock()
        self._fd = -1
        self._ident: tuple[int, int] = (0, 0)  # (st_dev, st_ino) of the open file
        self._size = 0
        self._day = time.strftime("%Y%m%d")
        # Folders are 0700 (0755 when the files are readable by others, as configured).
        self._dir_mode = 0o700 | (0o055 if config.permissions & 0o044 else 0)
        _make_dirs(self.dir, self._dir_mode)
        self._counter = self._last_counter()
        self._open(rotate=config.rotate_on_startup)
        if ctx.metrics is not None:
            ctx.metrics.register("", self.stats)

    # -- files ----------------------------------------------------------------------
    def _pattern(self) -> re.Pattern[str]:
        return re.compile(re.escape(self.name) + r"-(\d{8})(?:-(\d+))?\.ndjson$")

    def _existing(self) -> list[tuple[str, int, str]]:
        pat = self._pattern()
        found = []
        for entry in os.listdir(self.dir):
            m = pat.match(entry)
            if m:
                found.append((m.group(1), int(m.group(2) or 0), entry))
        return sorted(found)

    def _last_counter(self) -> int:
        same_day = [c for d, c, _ in self._existing() if d == self._day]
        return max(same_day) if same_day else 0

    def _path(self) -> str:
        suffix = f"-{self._counter}" if self._counter else ""
        return os.path.join(self.dir, f"{self.name}-{self._day}{suffix}.ndjson")

    @property
    def current_path(self) -> str:
        return self._path()

    def _open(self, rotate: bool = False) -> None:
        self._close_fd()
        _make_dirs(self.dir, self._dir_mode)  # (again: it may have been removed, e.g. after a rotation)
        day = time.strftime("%Y%m%d")
        if day != self._day:
            self._day, self._counter = day, self._last_counter()
        path = self._path()
        if rotate and os.path.exists(path) and os.path.getsize(path) > 0:
            self._counter += 1
            path = self._path()
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, self.config.permissions)  # (read: _cut_torn_tail)
        try:
            st = os.fstat(fd)
            if st.st_size == 0:
                os.fchmod(fd, self.config.permissions)  # whatever the umask
            self._fd, self._ident, self._size = fd, (st.st_dev, st.st_ino), st.st_size
            if st.st_size:
                self._cut_torn_tail(path)
        except OSError:
            self._close_fd()
            raise
        if self.debug_log is not None:
            self.debug_log.debug("output file opened", path=path, size=self._size, rotate=rotate)
        self._prune()

    def _close_fd(self) -> None:
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass
        self._fd = -1

    def _cut_torn_tail(self, path: str) -> None:
        """A file that does not end with a newline ends with a torn line (a crash or a failed
        write): cut it back so the next line does not get glued onto it."""
        end = _last_newline_end(self._fd, self._size)
        if end == self._size:
            return
        os.ftruncate(self._fd, end)
        self.torn_cut += 1
        if self.logger is not None:
            self.logger.warning("output file ended with a partial line; cut back", output="file", path=path,
                                bytes=self._size - end)
        self._size = end

    def _prune(self) -> None:
        files = self._existing()
        for _, _, entry in files[: max(0, len(files) - self.config.number_of_files)]:
            path = os.path.join(self.dir, entry)
            try:
                os.remove(path)
            except OSError:
                continue
            self.rotated_away += self._file_events.pop(path, 0)
            if self.debug_log is not None:
                self.debug_log.debug("rotation removed the oldest file", path=path, keep=self.config.number_of_files)

    def _check_file(self) -> None:
        """Reopen when the file or its folder was removed or replaced (checked once per batch)."""
        path = self._path()
        if self._fd < 0:  # the last reopen failed: try again
            self._open()
            return
        try:
            st = os.stat(path)
            same = (st.st_dev, st.st_ino) == self._ident
        except FileNotFoundError:
            same = False
        if same:
            return
        self.recreated += 1
        self.removed_externally += self._file_events.pop(path, 0)
        if self.logger is not None:
            self.logger.warning("output file or folder was removed or replaced; recreating it", output="file",
                                path=path)
        self._open()

    # -- output interface -------------------------------------------------------------
    def publish(self, batch: Batch) -> None:
        encode_into = self.codec.encode_into
        parts: list[Any] = []  # the batch's lines as pieces, joined once (see Codec.encode_into)
        sizes: list[int] = []  # each encoded event's line length
        encoded: list[Event] = []
        dropped = 0
        for event in batch.events:
            try:
                sizes.append(encode_into(event, parts))
                encoded.append(event)
            except (TypeError, ValueError) as exc:
                dropped += 1
                self.encode_errors += 1
                if self.logger is not None:
                    self.logger.warning("event could not be encoded", output="file", error=str(exc))
        done = 0  # events whose whole line is in a file
        with self._lock:
            try:
                self._check_file()
                if encoded:
                    size = sum(sizes)
                    if self._size + size <= self.limit or self._size == 0 and len(encoded) == 1:
                        done = self._write(b"".join(parts), sizes)  # the whole batch fits: one write
                    else:
                        done = self._write_rotating([self.codec.encode(e) + b"\n" for e in encoded])
            except _WriteFailed as failed:
                # As Beats' file output, a failed write is not retried (a full disk would hold
                # the agent forever): what is in the file is acked, the rest dropped (counted).
                done += failed.lines
                self._write_failed(failed.error, len(encoded) - done)
            except OSError as exc:  # opening or checking the file failed
                self._write_failed(exc, len(encoded) - done)
            self.written += done
        batch.settle(acked=done, dropped=dropped + len(encoded) - done)

    def _write(self, data: bytes, sizes: list[int]) -> int:
        """Write whole lines to the current file; the number of lines written, or _WriteFailed
        with the lines that made it (a torn last line is cut back)."""
        start = self._size
        view = memoryview(data)
        written = 0
        try:
            while written < len(data):
                written += os.write(self._fd, view[written:])
        except OSError as exc:
            lines, whole = _whole_lines(sizes, written)
            if whole < written:
                self._size = start + written
                self._cut_back(start + whole)
            else:
                self._size = start + written
            self._count(lines)
            raise _WriteFailed(exc, lines) from exc
        self._size = start + written
        self._count(len(sizes))
        return len(sizes)

    def _cut_back(self, offset: int) -> None:
        try:
            os.ftruncate(self._fd, offset)
            self._size = offset
        except OSError:
            pass  # cut when the file is next opened (_cut_torn_tail)

    def _count(self, lines: int) -> None:
        if lines:
            path = self._path()
            self._file_events[path] = self._file_events.get(path, 0) + lines

    def _write_rotating(self, lines: list[bytes]) -> int:
        """Lines that do not all fit in the current file: fill it, rotate, go on."""
        done = 0
        i = 0
        while i < len(lines):
            chunk: list[bytes] = []
            size = self._size
            while i + len(chunk) < len(lines):
                line = lines[i + len(chunk)]
                if size + len(line) > self.limit and (size > 0 or chunk):
                    break
                chunk.append(line)
                size += len(line)
            if chunk:
                try:
                    done += self._write(b"".join(chunk), [len(x) for x in chunk])
                except _WriteFailed as failed:
                    raise _WriteFailed(failed.error, done + failed.lines) from failed.error
                i += len(chunk)
            if i < len(lines):
                self._counter += 1
                try:
                    self._open()
                except OSError as exc:
                    raise _WriteFailed(exc, done) from exc
        return done

    def _write_failed(self, exc: OSError, lost: int) -> None:
        self.write_errors += 1
        if self.logger is not None:
            self.logger.error("writing events failed; dropped", output="file", error=str(exc), events=lost)
        self._close_fd()  # reopened (and checked) before the next batch
        try:
            self._open()
        except OSError as reopen:
            if self.logger is not None:
                self.logger.error("reopening the output file failed", output="file", error=str(reopen))

    def stats(self) -> dict[str, int]:
        return {
            "events.written": self.written,
            "events.rotated_away": self.rotated_away,
            "events.removed_externally": self.removed_externally,
            "events.encode_errors": self.encode_errors,
            "write_errors": self.write_errors,
            "files.recreated": self.recreated,
            "files.torn_lines_cut": self.torn_cut,
        }

    def close(self) -> None:
        with self._lock:
            self._close_fd()


class _WriteFailed(Exception):
    def __init__(self, error: OSError, lines: int):
        super().__init__(str(error))
        self.error = error
        self.lines = lines


def _whole_lines(sizes: list[int], written: int) -> tuple[int, int]:
    """How many of the lines fit whole in ``written`` bytes, and the bytes they take."""
    total = 0
    for i, n in enumerate(sizes):
        if total + n > written:
            return i, total
        total += n
    return len(sizes), total


def _last_newline_end(fd: int, size: int, chunk: int = 65536) -> int:
    """The offset just after the last newline of the file (0 if it has none)."""
    end = size
    while end > 0:
        start = max(0, end - chunk)
        data = os.pread(fd, end - start, start)
        at = data.rfind(b"\n")
        if at >= 0:
            return start + at + 1
        end = start
    return 0


def _make_dirs(path: str, mode: int) -> None:
    """Create the folder and any missing parents with ``mode`` (makedirs gives parents the
    umask's default)."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent != path:
        _make_dirs(parent, mode)
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        if not os.path.isdir(path):
            raise NotADirectoryError(20, "exists and is not a folder", path) from None
        return
    os.chmod(path, mode)


class FilePlugin:
    name = "file"
    api_version = "1.0"
    config_model = FileOutputConfig

    def create(self, config: FileOutputConfig, ctx: OutputContext) -> OutputGroup:
        """One writer (the file is one stream). As Beats' file output, a write error drops the
        batch (counted) instead of retrying it: a full disk must not hold the agent."""
        try:
            out = FileOutput(config, ctx)
        except OSError as exc:
            # A path that is a file, no permission, a read-only filesystem: one clear line.
            where = exc.filename or config.path or ctx.paths.data
            raise PluginSetupError(f"cannot write events to {where}: {exc.strerror or exc}") from None
        return OutputGroup([out], batch_size=config.bulk_max_size or 2048, retry=RetryPolicy(max_retries=0),
                           location=lambda: out.current_path)


plugin = FilePlugin()
