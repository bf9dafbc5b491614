"""Start and stop the Lumberjack v2 test receiver (``main.go``, built by ``setup.sh``).

A :class:`Receiver` is one receiver process on a loopback port. Every event it gets is written
as one NDJSON line (the exact JSON bytes the client sent) to ``out``, then ACKed. It can be
killed mid-stream and started again on the same port and file (``restart``), which is what
the at-least-once tests do. Only the process this helper started is ever signalled.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BINARY = HERE / ".build" / "lumber-receiver"


def binary() -> Path | None:
    """The built receiver, building it first when Go is here but setup.sh was not run."""
    if BINARY.exists():
        return BINARY
    if shutil.which("go") or Path("/usr/local/go/bin/go").exists():
        subprocess.run(["bash", str(HERE / "setup.sh")], check=False, capture_output=True, timeout=600)
    return BINARY if BINARY.exists() else None


class Receiver:
    def __init__(
        self,
        out: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        ack_delay: float = 0.0,
        keepalive: float = 3.0,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        tls_client_ca: Path | None = None,
        tls_min_version: str = "1.2",
    ):
        self.out = Path(out)
        self.host = host
        self.port = port
        self.ack_delay = ack_delay
        self.keepalive = keepalive
        self.tls = (tls_cert, tls_key, tls_client_ca)
        self.tls_min_version = tls_min_version
        self.proc: subprocess.Popen[str] | None = None
        self.stderr_log = self.out.with_suffix(".stderr.log")

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> "Receiver":
        exe = binary()
        if exe is None:
            raise RuntimeError("lumber-receiver is not built (run tests/tooling/lumber-receiver/setup.sh)")
        cmd = [
            str(exe), "-addr", self.address, "-out", str(self.out),
            "-ack-delay", f"{int(self.ack_delay * 1000)}ms", "-keepalive", f"{int(self.keepalive * 1000)}ms",
        ]
        cert, key, client_ca = self.tls
        if cert is not None:
            cmd += ["-tls-cert", str(cert), "-tls-key", str(key), "-tls-min-version", self.tls_min_version]
        if client_ca is not None:
            cmd += ["-tls-client-ca", str(client_ca)]
        err = open(self.stderr_log, "a")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        err.close()
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("LISTENING "):
                self.port = int(line.split()[1].rsplit(":", 1)[1])
                return self
            if not line and self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"lumber-receiver did not start: {line!r}; see {self.stderr_log}")

    def kill(self) -> None:
        """Kill -9 (no flush, no goodbye): what a crashed Logstash looks like to the client."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def stop(self) -> None:
        """SIGTERM: the receiver closes its server, flushes the file and exits."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def restart(self) -> "Receiver":
        self.kill()
        # The port was ours a moment ago; Go sets SO_REUSEADDR, so rebinding it works at once.
        return self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def lines(self) -> list[bytes]:
        if not self.out.exists():
            return []
        with open(self.out, "rb") as fh:
            return [line for line in fh.read().split(b"\n") if line]

    def count(self) -> int:
        if not self.out.exists():
            return 0
        with open(self.out, "rb") as fh:
            return fh.read().count(b"\n")

    def __enter__(self) -> "Receiver":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for(cond, timeout: float, interval: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(interval)
    return bool(cond())


__all__ = ["BINARY", "Receiver", "binary", "wait_for"]
