"""A protocol analyzer that records what the decoding layer hands it (for decode tests)."""

from __future__ import annotations

from pybeat.api import Analyzer, Packet, TcpConnection


class Recorder(Analyzer):
    def __init__(self) -> None:
        self.udp: list[tuple[Packet, bytes]] = []
        self.icmp: list[tuple[Packet, bytes]] = []
        self.tcp: list[tuple[str, bool, bytes | int]] = []
        self.conns: list[TcpConnection] = []
        self.expired: list[int] = []
        self.flushed = False

    def on_udp(self, pkt: Packet, payload: bytes) -> None:
        self.udp.append((pkt, payload))

    def on_icmp(self, pkt: Packet, message: bytes) -> None:
        self.icmp.append((pkt, message))

    def on_tcp_data(self, conn: TcpConnection, from_client: bool, data: bytes, ts_ns: int) -> None:
        if all(conn is not c for c in self.conns):
            self.conns.append(conn)
        self.tcp.append(("data", from_client, data))

    def on_tcp_gap(self, conn: TcpConnection, from_client: bool, nbytes: int, ts_ns: int) -> None:
        self.tcp.append(("gap", from_client, nbytes))

    def on_tcp_close(self, conn: TcpConnection, from_client: bool, ts_ns: int) -> None:
        self.tcp.append(("close", from_client, 0))

    def expire(self, now_ns: int) -> None:
        self.expired.append(now_ns)

    def flush(self, now_ns: int) -> None:
        self.flushed = True

    def stream(self, from_client: bool) -> bytes:
        return b"".join(d for kind, fc, d in self.tcp if kind == "data" and fc == from_client)  # type: ignore[misc]
