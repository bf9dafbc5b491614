"""``output.file``: one event per line, Beats' JSON codec, size-based rotation.

Files are ``<filename>-<yyyymmdd>.ndjson``, then ``<filename>-<yyyymmdd>-1.ndjson``, ``-2``, ...
as they rotate (Beats 8.x naming); at most ``number_of_files`` are kept (oldest deleted). A
batch is acknowledged once written and flushed; an event that cannot be encoded is dropped and
counted, as Beats does.
"""

from __future__ import annotations

import os
import re
import threading
import time
from typing import Any

from pydantic import Field, field_validator

from pybeat.api import Batch, Codec, CodecConfig, Event, OutputContext, OutputGroup, PluginConfig, RetryPolicy


class FileOutputConfig(PluginConfig):
    enabled: bool = True
    path: str = Field(default="", description="directory for the files (default: path.data)")
    filename: str = ""
    rotate_every_kb: int = Field(default=10240, ge=1)
    number_of_files: int = Field(default=7, ge=2, le=1024)
    permissions: int = 0o600
    rotate_on_startup: bool = True
    codec: CodecConfig | None = None
    queue: dict[str, Any] | None = None
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
        self.metrics = ctx.metrics
        self.logger = ctx.logger
        self.written = 0
        self.encode_errors = 0
        self.write_errors = 0
        self._lock = threading.Lock()
        self._fh: Any = None
        self._size = 0
        self._day = time.strftime("%Y%m%d")
        mode = 0o700 | (0o055 if config.permissions & 0o044 else 0)
        os.makedirs(self.dir, mode=mode, exist_ok=True)
        self._counter = self._last_counter()
        self._open(rotate=config.rotate_on_startup)

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
        if self._fh is not None:
            self._fh.close()
        day = time.strftime("%Y%m%d")
        if day != self._day:
            self._day, self._counter = day, self._last_counter()
        path = self._path()
        if rotate and os.path.exists(path) and os.path.getsize(path) > 0:
            self._counter += 1
            path = self._path()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, self.config.permissions)
        self._fh = os.fdopen(fd, "ab", buffering=1 << 20)
        self._size = self._fh.tell()
        self._prune()

    def _prune(self) -> None:
        files = self._existing()
        for _, _, entry in files[: max(0, len(files) - self.config.number_of_files)]:
            try:
                os.remove(os.path.join(self.dir, entry))
            except OSError:
                pass

    # -- output interface -------------------------------------------------------------
    def publish(self, batch: Batch) -> None:
        encode_into = self.codec.encode_into
        parts: list[Any] = []  # the batch's lines as pieces, joined once (see Codec.encode_into)
        encoded: list[Event] = []
        size = 0
        dropped = 0
        for event in batch.events:
            try:
                size += encode_into(event, parts)
                encoded.append(event)
            except (TypeError, ValueError) as exc:
                dropped += 1
                self.encode_errors += 1
                if self.logger is not None:
                    self.logger.warning("event could not be encoded", output="file", error=str(exc))
        with self._lock:
            try:
                if self._fh is None:  # the last reopen failed: try again
                    self._open()
                if encoded:
                    if self._size + size <= self.limit or self._size == 0 and len(encoded) == 1:
                        self._fh.write(b"".join(parts))  # the whole batch fits in the current file: one write
                        self._size += size
                    else:
                        self._write_rotating([self.codec.encode(e) for e in encoded])
                    self._fh.flush()
                self.written += len(encoded)
            except OSError as exc:
                # As Beats' file output: a write error drops the batch (counted), it is not
                # retried (a full disk would otherwise hold the agent forever).
                self.write_errors += 1
                if self.logger is not None:
                    self.logger.error("writing events failed; batch dropped", output="file", error=str(exc),
                                      events=len(encoded))
                batch.settle(dropped=len(batch.events))
                self._reopen_after_error()
                return
        batch.settle(acked=len(batch.events) - dropped, dropped=dropped)

    def _reopen_after_error(self) -> None:
        """Drop what the buffered writer still holds and start on a fresh handle."""
        try:
            if self._fh is not None:
                self._fh.close()
        except OSError:
            pass
        self._fh = None
        try:
            self._open()
        except OSError as exc:
            if self.logger is not None:
                self.logger.error("reopening the output file failed", output="file", error=str(exc))

    def _write_rotating(self, lines: list[bytes]) -> None:
        fh = self._fh
        for line in lines:
            line += b"\n"
            if self._size + len(line) > self.limit and self._size > 0:
                self._counter += 1
                self._open()
                fh = self._fh
            fh.write(line)
            self._size += len(line)

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


class FilePlugin:
    name = "file"
    api_version = "1.0"
    config_model = FileOutputConfig

    def create(self, config: FileOutputConfig, ctx: OutputContext) -> OutputGroup:
        """One writer (the file is one stream). As Beats' file output, a write error drops the
        batch (counted) instead of retrying it: a full disk must not hold the agent."""
        out = FileOutput(config, ctx)
        return OutputGroup([out], batch_size=config.bulk_max_size or 2048, retry=RetryPolicy(max_retries=0),
                           location=lambda: out.current_path)


plugin = FilePlugin()
