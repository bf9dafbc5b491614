"""The output client's rules, one at a time: window sizing, pipelining, partial ACKs, keep-alives,
TTL, retries and backoff, failover, config. Against the real receiver where it can show the
rule; against a scripted peer (a few lines of socket code playing the server side of the
protocol) where go-lumber never does the thing (partial ACKs, withheld ACKs)."""

from __future__ import annotations

import copy
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pybeat.api import Batch, BeatInfo, Event, OutputContext
from pybeat.outputs.logstash.config import LogstashConfig, parse_host
from pybeat.outputs.logstash.output import LogstashClient
from pybeat.outputs.logstash.plugin import plugin
from pybeat.outputs.logstash.protocol import FrameDecoder, encode_ack


class Settled:
    """Records how batches were settled: (acked, handed back, dropped); handed back = retried
    (attempted) + cancelled (not attempted), ``kinds`` says which."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, int]] = []
        self.kinds: list[tuple[int, int]] = []

    def batch(self, events: list[Event], retries: int = 0) -> Batch:
        def settled(b: Batch, a: int, d: int, rt: list[Event], cn: list[Event], dr: int) -> None:
            self.calls.append((a + d, len(rt) + len(cn), dr))
            self.kinds.append((len(rt), len(cn)))

        return Batch(events, settled, retries)


def _events(n: int, start: int = 0) -> list[Event]:
    return [Event(1_700_000_000_000_000_000 + i, {"n": i, "dns": {"question": {"name": "a.example"}}})
            for i in range(start, start + n)]


def _client(raw: dict[str, Any], ctx: OutputContext | None = None) -> LogstashClient:
    raw = {"backoff": {"init": "10ms", "max": "20ms"}, "timeout": "5s", **raw}
    ctx = ctx or OutputContext(beat=BeatInfo(version="8.0.0"), metrics=None, logger=None, name="logstash")
    return plugin.create(LogstashConfig.model_validate(raw), ctx).clients[0]


class Peer:
    """A scripted Lumberjack server on loopback: ``script(conn, decoder)`` runs per connection."""

    def __init__(self, script: Callable[[socket.socket, FrameDecoder], None]):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)  # accept() polls so close() can stop the thread
        self._stop = threading.Event()
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.script = script
        self.connections = 0
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(10)
                try:
                    self.script(conn, FrameDecoder())
                except (OSError, AssertionError) as exc:
                    self.errors.append(exc)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def peer() -> Iterator[Callable[..., Peer]]:
    made: list[Peer] = []

    def make(script: Callable[[socket.socket, FrameDecoder], None]) -> Peer:
        p = Peer(script)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def _read_windows(conn: socket.socket, dec: FrameDecoder, n: int) -> list[list[bytes]]:
    windows: list[list[bytes]] = []
    while len(windows) < n:
        data = conn.recv(65536)
        if not data:
            raise AssertionError("client closed early")
        windows += dec.feed(data)
    return windows


# -- ACK handling (scripted peer) -----------------------------------------------------------------


def test_partial_acks_split_across_reads_settle_the_whole_batch(peer: Any) -> None:
    """ACKs for part of a window, cut mid-frame, with keep-alives between, add up to the window."""
    def script(conn: socket.socket, dec: FrameDecoder) -> None:
        (win,) = _read_windows(conn, dec, 1)
        assert len(win) == 5
        stream = encode_ack(0) + encode_ack(2) + encode_ack(0) + encode_ack(5)
        for piece in (stream[:3], stream[3:8], stream[8:20], stream[20:]):
            conn.sendall(piece)
        conn.recv(1)

    p = peer(script)
    s = Settled()
    c = _client({"hosts": [p.address]})
    c.publish(s.batch(_events(5)))
    c.close()
    assert s.calls == [(5, 0, 0)]
    assert c.shared.counters["acks.keepalive"] == 2


def test_partial_ack_then_close_acks_the_prefix_and_retries_the_rest(peer: Any) -> None:
    """Logstash stored 3 of 5 events, then the connection died: 3 acked, 2 handed back for retry."""
    def script(conn: socket.socket, dec: FrameDecoder) -> None:
        _read_windows(conn, dec, 1)
        conn.sendall(encode_ack(3))

    p = peer(script)
    s = Settled()
    c = _client({"hosts": [p.address]})
    c.publish(s.batch(_events(5)))
    c.close()
    assert s.calls == [(3, 2, 0)]


def test_ack_beyond_the_window_is_a_protocol_error(peer: Any) -> None:
    """An ACK for more events than sent fails the batch (retried), as go-lumber's client does."""
    def script(conn: socket.socket, dec: FrameDecoder) -> None:
        _read_windows(conn, dec, 1)
        conn.sendall(encode_ack(9))
        conn.recv(1)

    p = peer(script)
    s = Settled()
    c = _client({"hosts": [p.address]})
    c.publish(s.batch(_events(2)))
    c.close()
    assert s.calls == [(0, 2, 0)]


def test_pipelining_sends_the_next_window_before_the_first_ack(peer: Any) -> None:
    """``pipelining: 2``: two windows are on the wire before the server ACKs anything."""
    def script(conn: socket.socket, dec: FrameDecoder) -> None:
        windows = _read_windows(conn, dec, 2)  # a synchronous client would wait here forever
        for w in windows:
            conn.sendall(encode_ack(len(w)))
        windows = _read_windows(conn, dec, 1)
        conn.sendall(encode_ack(len(windows[0])))
        conn.recv(1)

    p = peer(script)
    s = Settled()
    c = _client({"hosts": [p.address], "bulk_max_size": 10, "pipelining": 2, "timeout": "3s"})
    c.publish(s.batch(_events(25)))
    c.close()
    assert s.calls == [(25, 0, 0)], p.errors


def test_max_retries_drops_events_that_keep_failing_after_send(peer: Any) -> None:
    """A server that takes the window and closes without ACK: each failed send counts; after
    ``max_retries`` the events are dropped (Beats' rule for non-guaranteed events). The client
    reports each failed send as an attempt; the agent (OutputRunner) keeps the count."""
    from pybeat.pipeline.runner import OutputRunner

    def script(conn: socket.socket, dec: FrameDecoder) -> None:
        _read_windows(conn, dec, 1)

    p = peer(script)
    s = Settled()
    c = _client({"hosts": [p.address], "max_retries": 2})
    c.publish(s.batch(_events(3)))
    c.close()
    assert s.calls == [(0, 3, 0)] and s.kinds == [(3, 0)]  # sent, not ACKed: one attempt each
    cfg = LogstashConfig.model_validate({"hosts": [p.address], "max_retries": 2, "timeout": "5s",
                                         "backoff": {"init": "10ms", "max": "20ms"}})
    ctx = OutputContext(beat=BeatInfo(version="8.0.0"), metrics=None, logger=None, name="logstash")
    runner = OutputRunner("logstash", plugin.create(cfg, ctx), 100, None)
    runner.queue.put(_events(3))
    runner.close(10.0)
    st = runner.stats()
    assert st["events.dropped_max_retries"] == 3 and st["events.acked"] == 0
    assert p.connections == 1 + 3  # the first send above, then the first try and max_retries retries


def test_refused_connections_retry_forever_without_counting(unused_port: int) -> None:
    """Nothing listening: the batch goes back for retry every time and is never dropped, even
    with ``max_retries: 0``, because nothing was sent."""
    s = Settled()
    c = _client({"hosts": [f"127.0.0.1:{unused_port}"], "max_retries": 0})
    events = _events(2)
    for _ in range(4):
        c.publish(s.batch(events))
    c.close()
    assert s.calls == [(0, 2, 0)] * 4
    assert s.kinds == [(0, 2)] * 4  # cancelled (nothing sent), not retried: no attempt used
    assert c.shared.counters["connections.failed"] == 4


@pytest.fixture
def unused_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# -- against the real receiver ------------------------------------------------------------------


def test_slow_start_grows_windows_from_ten(receivers: Any) -> None:
    """``slow_start``: windows of 10, 15, 23, 35, ... up to ``bulk_max_size``; without it one
    window per ``bulk_max_size`` events."""
    r = receivers()
    s = Settled()
    c = _client({"hosts": [r.address], "slow_start": True, "bulk_max_size": 50, "pipelining": 0})
    c.publish(s.batch(_events(200)))
    # 10 + 15 + 23 + 35 + 50 + 50 = 183, then 17: seven windows
    assert c.shared.counters["windows"] == 7
    assert c.window == 50
    c.close()
    c2 = _client({"hosts": [r.address], "bulk_max_size": 50})
    c2.publish(s.batch(_events(200)))
    c2.close()
    assert c2.shared.counters["windows"] == 4
    assert s.calls == [(200, 0, 0), (200, 0, 0)]


def test_slow_start_window_halves_on_error(peer: Any) -> None:
    """A failed window halves the slow-start window."""
    def script(conn: socket.socket, dec: FrameDecoder) -> None:
        _read_windows(conn, dec, 1)

    p = peer(script)
    c = _client({"hosts": [p.address], "slow_start": True})
    c.publish(Settled().batch(_events(5)))
    c.close()
    assert c.window == 5


def test_keepalive_acks_keep_a_slow_batch_alive(receivers: Any) -> None:
    """A receiver that needs 1.5 s per batch but sends keep-alive ACKs (seq 0) every 200 ms is
    waited for with ``timeout: 1s``; without keep-alives the same wait times out and retries."""
    s = Settled()
    r = receivers("ka", ack_delay=1.5, keepalive=0.2)
    c = _client({"hosts": [r.address], "timeout": "1s"})
    c.publish(s.batch(_events(3)))
    c.close()
    assert s.calls == [(3, 0, 0)]
    assert c.shared.counters["acks.keepalive"] >= 3
    r2 = receivers("noka", ack_delay=1.5, keepalive=0)
    c2 = _client({"hosts": [r2.address], "timeout": "1s"})
    c2.publish(s.batch(_events(3)))
    c2.close()
    assert s.calls[1] == (0, 3, 0)


def test_ttl_reconnects_between_batches(receivers: Any) -> None:
    """``ttl: 100ms``: a batch after the connection is older than that opens a new connection."""
    import time

    r = receivers()
    s = Settled()
    c = _client({"hosts": [r.address], "ttl": "100ms"})
    c.publish(s.batch(_events(2)))
    c.publish(s.batch(_events(2, 2)))
    time.sleep(0.15)
    c.publish(s.batch(_events(2, 4)))
    c.close()
    assert c.shared.counters["connections.opened"] == 2
    assert c.shared.counters["connections.ttl_reconnects"] == 1
    assert s.calls == [(2, 0, 0)] * 3


def test_failover_moves_to_the_next_host(receivers: Any, unused_port: int) -> None:
    """``loadbalance: false`` with a dead and a live host: after the dead one fails, the client
    sticks to the live one."""
    r = receivers()
    s = Settled()
    c = _client({"hosts": [f"127.0.0.1:{unused_port}", r.address]})
    for i in range(4):
        c.publish(s.batch(_events(2, 2 * i)))
    c.close()
    assert (0, 2, 0) not in s.calls[1:]
    assert s.calls.count((2, 0, 0)) >= 3
    assert c.host == r.address


def test_events_are_not_mutated(receivers: Any) -> None:
    """Events are shared between outputs: publishing leaves fields and meta untouched."""
    r = receivers()
    events = _events(3)
    events[0].meta["raw_index"] = "x"
    before = [(copy.deepcopy(e.fields), copy.deepcopy(e.meta)) for e in events]
    c = _client({"hosts": [r.address], "index": "other", "escape_html": True})
    c.publish(Settled().batch(events))
    c.close()
    assert [(e.fields, e.meta) for e in events] == before


def test_unencodable_event_is_dropped_alone(receivers: Any) -> None:
    """An event the JSON codec refuses is dropped and counted; the rest of the batch is sent."""
    r = receivers()
    events = _events(3)
    events[1].fields["bad"] = {1.5j: 1}  # a complex-number key orjson cannot write
    s = Settled()
    c = _client({"hosts": [r.address]})
    c.publish(s.batch(events))
    c.close()
    assert s.calls == [(2, 0, 1)]


def test_loadbalance_workers_are_bound_one_per_host() -> None:
    """``loadbalance: true``: worker x hosts clients, client i bound to host i mod n."""
    cfg = LogstashConfig.model_validate({"hosts": ["a:1", "b:2"], "loadbalance": True, "worker": 2})
    assert plugin.workers(cfg) == 4
    ctx = OutputContext(beat=BeatInfo(), metrics=None, logger=None, name="logstash")
    hosts = [c.hosts for c in plugin.create(cfg, ctx).clients]
    assert hosts == [[("a", 1)], [("b", 2)], [("a", 1)], [("b", 2)]]
    assert plugin.workers(LogstashConfig.model_validate({"hosts": ["a", "b"], "workers": 3})) == 3


# -- config ------------------------------------------------------------------------------------------


def test_config_defaults_match_packetbeat() -> None:
    """Defaults of §7.3: port 5044, loadbalance off, 1 worker, bulk 2048, pipelining 2,
    compression 3, timeout 30s, max_retries 3, backoff 1s/60s, ttl 0, slow_start off, no TLS."""
    c = LogstashConfig.model_validate({"hosts": ["logstash"]})
    assert c.addresses == [("logstash", 5044)]
    assert (c.loadbalance, c.worker, c.bulk_max_size, c.pipelining, c.compression_level) == (False, 1, 2048, 2, 3)
    assert (c.timeout, c.max_retries, c.backoff.init, c.backoff.max, c.ttl, c.slow_start) == (30, 3, 1, 60, 0, False)
    assert not c.tls_enabled and c.index is None and c.escape_html is False
    assert plugin.batch_size(c) == 4096  # one client: two pipelined windows per publish call
    lb = LogstashConfig.model_validate({"hosts": ["a", "b"], "loadbalance": True})
    assert plugin.batch_size(lb) == 2048  # several clients: one window each, fair share of the queue
    assert plugin.batch_size(LogstashConfig.model_validate({"hosts": ["x"], "bulk_max_size": 0})) == 0


def test_config_accepts_every_packetbeat_key() -> None:
    """Every key of §7.3 and §7.7 validates, with Beats' spellings (durations, worker/workers)."""
    c = LogstashConfig.model_validate({
        "enabled": True, "hosts": "[::1]:5045", "loadbalance": True, "workers": 2, "bulk_max_size": 512,
        "slow_start": True, "pipelining": 0, "compression_level": 9, "escape_html": True, "ttl": "1m",
        "timeout": "90s", "max_retries": -1, "backoff": {"init": "500ms", "max": "2m"}, "index": "pb",
        "proxy_url": "socks5://user:pw@127.0.0.1:1080", "proxy_use_local_resolver": True,
        # (a per-output queue is refused before the model: tests/unit/test_config.py)
        "ssl": {"enabled": True, "verification_mode": "strict", "supported_protocols": ["TLSv1.2", "TLSv1.3"],
                "certificate_authorities": "/etc/ca.pem", "certificate": "/c.pem", "key": "/k.pem",
                "key_passphrase": "x", "cipher_suites": ["ECDHE-RSA-AES128-GCM-SHA256"], "curve_types": ["P-256"],
                "renegotiation": "never", "ca_sha256": "abc", "restart_on_cert_change": {"enabled": False}},
    })
    assert c.addresses == [("::1", 5045)] and c.worker == 2 and c.ttl == 60 and c.tls_enabled
    assert c.ssl.certificate_authorities == ["/etc/ca.pem"]


@pytest.mark.parametrize(
    "raw",
    [
        {"hosts": ["x"], "bulk_max_sise": 1},  # unknown key (typo)
        {"hosts": []},
        {"hosts": ["x:99999"]},
        {"hosts": ["x:port"]},
        {"hosts": ["x"], "compression_level": 10},
        {"hosts": ["x"], "proxy_url": "http://proxy:3128"},
        {"hosts": ["x"], "ssl": {"verification_mode": "sometimes"}},
        {"hosts": ["x"], "ssl": {"certificate": "/c.pem"}},  # key missing
        {"hosts": ["x"], "timeout": "soon"},
    ],
)
def test_bad_config_is_refused(raw: dict[str, Any]) -> None:
    """Bad values and unknown keys are refused at validation, naming the key."""
    with pytest.raises(ValidationError):
        LogstashConfig.model_validate(raw)


def test_host_parsing() -> None:
    """Hosts as Beats writes them: name, name:port, IPv4, [IPv6]:port, bare IPv6."""
    assert parse_host("logstash") == ("logstash", 5044)
    assert parse_host("10.0.0.1:5000") == ("10.0.0.1", 5000)
    assert parse_host("[fd00::1]:5001") == ("fd00::1", 5001)
    assert parse_host("fd00::1") == ("fd00::1", 5044)
    assert parse_host("[fd00::1]") == ("fd00::1", 5044)


def test_ssl_section_enables_tls_unless_disabled() -> None:
    """As Beats: an ``ssl`` section turns TLS on, ``ssl.enabled: false`` turns it off."""
    assert LogstashConfig.model_validate({"hosts": ["x"], "ssl": {"verification_mode": "none"}}).tls_enabled
    assert not LogstashConfig.model_validate({"hosts": ["x"], "ssl": {"enabled": False}}).tls_enabled


def test_ipv6_loopback_host(receivers: Any) -> None:
    """A receiver on [::1] is reached through ``hosts: ["[::1]:port"]``."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        r = receivers(host="::1")
    except RuntimeError as exc:
        pytest.skip(f"cannot listen on ::1: {exc}")
    s = Settled()
    c = _client({"hosts": [r.address]})
    c.publish(s.batch(_events(3)))
    c.close()
    assert s.calls == [(3, 0, 0)]


def test_escape_html_reaches_the_wire(receivers: Any) -> None:
    """``escape_html: true`` writes <, > and & as \\u003c, \\u003e, \\u0026, as Beats does."""
    from lumber_receiver import wait_for

    r = receivers()
    c = _client({"hosts": [r.address], "escape_html": True})
    c.publish(Settled().batch([Event(0, {"q": "<a&b>"})]))
    c.close()
    assert wait_for(lambda: r.count() == 1, 5)
    assert b'"q":"\\u003ca\\u0026b\\u003e"' in r.lines()[0]


class Socks5Relay:
    """A minimal SOCKS5 server (RFC 1928/1929) that only connects to loopback targets."""

    def __init__(self, user: str = "", password: str = ""):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.user, self.password = user, password
        self.targets: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, c: socket.socket) -> None:
        c.settimeout(10)
        with c:
            ver, n = c.recv(2)
            methods = c.recv(n)
            want = 2 if self.user else 0
            if want not in methods:
                c.sendall(b"\x05\xff")
                return
            c.sendall(bytes([5, want]))
            if want == 2:
                _, ulen = c.recv(2)
                user = c.recv(ulen).decode()
                (plen,) = c.recv(1)
                pw = c.recv(plen).decode()
                ok = (user, pw) == (self.user, self.password)
                c.sendall(b"\x01" + (b"\x00" if ok else b"\x01"))
                if not ok:
                    return
            _, cmd, _, atyp = c.recv(4)
            if atyp == 1:
                host = socket.inet_ntop(socket.AF_INET, c.recv(4))
            elif atyp == 4:
                host = socket.inet_ntop(socket.AF_INET6, c.recv(16))
            else:
                host = c.recv(c.recv(1)[0]).decode()
            port = int.from_bytes(c.recv(2), "big")
            self.targets.append((host, port))
            assert host in ("127.0.0.1", "localhost", "::1"), "test relay connects to loopback only"
            up = socket.create_connection((host, port), timeout=10)
            c.sendall(b"\x05\x00\x00\x01" + bytes(4) + b"\x00\x00")
            with up:
                t = threading.Thread(target=self._pump, args=(up, c), daemon=True)
                t.start()
                self._pump(c, up)
                t.join(10)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


def test_socks5_proxy_with_password(receivers: Any) -> None:
    """``proxy_url: socks5://user:pass@...``: events reach the receiver through the proxy, which
    resolves the name itself unless ``proxy_use_local_resolver`` is set."""
    r = receivers()
    relay = Socks5Relay("pb", "s3cret")
    try:
        s = Settled()
        c = _client({"hosts": [f"localhost:{r.port}"], "proxy_url": f"socks5://pb:s3cret@127.0.0.1:{relay.port}"})
        c.publish(s.batch(_events(4)))
        c.close()
        c = _client({"hosts": [f"localhost:{r.port}"], "proxy_use_local_resolver": True,
                     "proxy_url": f"socks5://pb:s3cret@127.0.0.1:{relay.port}"})
        c.publish(s.batch(_events(4, 4)))
        c.close()
        bad = _client({"hosts": [r.address], "proxy_url": f"socks5://pb:wrong@127.0.0.1:{relay.port}"})
        bad.publish(s.batch(_events(1)))
        bad.close()
    finally:
        relay.close()
    assert s.calls == [(4, 0, 0), (4, 0, 0), (0, 1, 0)]
    assert relay.targets[0] == ("localhost", r.port)
    assert relay.targets[1][0] in ("127.0.0.1", "::1")
    assert r.count() == 8


def test_connection_closed_while_idle_is_a_reconnect_not_a_failed_send(receivers: Any) -> None:
    """The server closed the idle connection between batches (Logstash's inactivity timeout, a
    firewall, a restart): the next batch reconnects first, so nothing fails or counts as a retry."""
    r = receivers()
    s = Settled()
    c = _client({"hosts": [r.address], "max_retries": 0})
    c.publish(s.batch(_events(3)))
    r.restart()
    c.publish(s.batch(_events(3, 3)))
    c.close()
    assert s.calls == [(3, 0, 0), (3, 0, 0)]
    assert c.shared.counters["connections.closed_by_server"] == 1
    assert c.shared.counters["batches.failed"] == 0


def test_close_wakes_a_worker_waiting_for_acks(receivers: Any) -> None:
    """Agent shutdown: ``close()`` from another thread ends a publish blocked on a slow ACK at
    once (the batch goes back for retry), instead of after ``timeout``."""
    import time

    r = receivers(ack_delay=5.0, keepalive=0)
    s = Settled()
    c = _client({"hosts": [r.address], "timeout": "30s"})
    t = threading.Thread(target=c.publish, args=(s.batch(_events(2)),))
    t.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    c.close()
    t.join(10)
    assert not t.is_alive() and time.monotonic() - t0 < 2
    assert s.calls == [(0, 2, 0)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    count=st.integers(1, 30),
    data=st.data(),
)
def test_any_ack_pattern_settles_exactly_the_acked_prefix(peer: Any, count: int, data: st.DataObject) -> None:
    """Whatever mix of keep-alives, partial and repeated ACKs the server sends, in whatever
    pieces, and whether or not it then closes early, the batch settles the highest ACKed
    sequence as acked and hands the rest back."""
    steps = data.draw(st.lists(st.integers(0, count), max_size=8), label="acks")
    finish = data.draw(st.booleans(), label="ack all at the end")
    chunk = data.draw(st.integers(1, 7), label="bytes per write")
    acks = steps + ([count] if finish else [])
    expected = max([0, *acks])

    def script(conn: socket.socket, dec: FrameDecoder) -> None:
        _read_windows(conn, dec, 1)
        stream = b"".join(encode_ack(a) for a in acks)
        for i in range(0, len(stream), chunk):
            conn.sendall(stream[i : i + chunk])
        if expected == count:
            conn.recv(1)  # wait for the client to finish; otherwise close early

    p = peer(script)
    s = Settled()
    c = _client({"hosts": [p.address], "bulk_max_size": 0, "compression_level": 0})
    c.publish(s.batch(_events(count)))
    c.close()
    p.close()
    assert s.calls == [(expected, count - expected, 0)]


def test_loadbalance_client_of_a_dead_host_sends_its_batch_to_another(receivers: Any, unused_port: int) -> None:
    """``loadbalance``: the client bound to a host that refuses connections delivers the batch it
    took through another host instead of handing it back (at the end of a replay the other
    clients may be gone, and the batch would circle forever)."""
    r = receivers()
    cfg = LogstashConfig.model_validate({"hosts": [f"127.0.0.1:{unused_port}", r.address], "loadbalance": True,
                                         "backoff": {"init": "10ms", "max": "20ms"}})
    ctx = OutputContext(beat=BeatInfo(), metrics=None, logger=None, name="logstash")
    dead_bound = plugin.create(cfg, ctx).clients[0]
    assert dead_bound.hosts == [("127.0.0.1", unused_port)]
    s = Settled()
    dead_bound.publish(s.batch(_events(5)))
    dead_bound.close()
    assert s.calls == [(5, 0, 0)]
    assert dead_bound.shared.counters["batches.fallback"] == 1
    assert r.count() == 5


def test_pipeline_with_a_dead_loadbalanced_host_drains_at_close(receivers: Any, unused_port: int) -> None:
    """Through the pipeline's OutputRunner, 10 short replays with one of two load-balanced hosts
    dead: every close drains the queue, all events ACKed by the live host. (The hang this guards
    against is a narrow race in MemQueue.get, which returns None to an idle worker once the
    queue is closed even while another worker holds a batch that may come back for retry.)"""
    from pybeat.pipeline.runner import OutputRunner

    r = receivers()
    cfg = LogstashConfig.model_validate({"hosts": [f"127.0.0.1:{unused_port}", r.address], "loadbalance": True,
                                         "bulk_max_size": 50, "backoff": {"init": "10ms", "max": "50ms"}})
    for round_ in range(10):
        ctx = OutputContext(beat=BeatInfo(), metrics=None, logger=None, name="logstash")
        runner = OutputRunner("logstash", plugin.create(cfg, ctx), 200, None)
        runner.queue.put(_events(300, 300 * round_))
        assert runner.close(10.0), f"round {round_}: {runner.stats()}"
        assert runner.acked == 300 and runner.dropped == 0
    assert r.count() == 3000
