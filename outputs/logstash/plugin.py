"""``output.logstash``: the plugin object the ``pybeat.outputs`` entry point names.

Worker layout, as Beats: with ``loadbalance: false`` there are ``worker`` clients, each
sticking to one (random) host and failing over to the next; with ``loadbalance: true`` there
are ``worker`` clients *per host*, all pulling batches from the same queue, so a faster host
takes more and a dead host's batches go to the others.
"""

from __future__ import annotations

from pybeat.api import OutputContext
from pybeat.outputs.logstash.config import LogstashConfig
from pybeat.outputs.logstash.output import LogstashClient, SharedState
from pybeat.outputs.logstash.tls import TlsError, build_tls


class LogstashPlugin:
    name = "logstash"
    config_model = LogstashConfig

    def create(self, config: LogstashConfig, ctx: OutputContext) -> LogstashClient:
        """One client per call (the pipeline calls this ``workers(config)`` times)."""
        key = f"_logstash_{ctx.name}"
        shared = ctx.extra.get(key)
        if shared is None:
            shared = ctx.extra[key] = SharedState()
            register = getattr(ctx.metrics, "register", None)
            if register is not None:
                register(f"output.{ctx.name}", shared.snapshot)
        with shared.lock:
            index = shared.next_client
            shared.next_client += 1
        tls = None
        if config.tls_enabled:
            try:
                tls = build_tls(config.ssl)
            except TlsError as exc:
                raise ValueError(f"output.logstash.ssl: {exc}") from exc
        if index == 0 and config.ssl.restart_on_cert_change.enabled and ctx.logger is not None:
            ctx.logger.warning("ssl.restart_on_cert_change is not supported yet: restart pybeat after "
                               "replacing certificates", output="logstash")
        hosts = config.addresses
        fallback: list[tuple[str, int]] = []
        if config.loadbalance:
            own = index % len(hosts)
            fallback = hosts[own + 1 :] + hosts[:own]
            hosts = [hosts[own]]
        return LogstashClient(config, ctx, shared, hosts, tls, fallback_hosts=fallback)

    def workers(self, config: LogstashConfig) -> int:
        return config.worker * (len(config.hosts) if config.loadbalance else 1)

    def batch_size(self, config: LogstashConfig) -> int:
        """Events per publish call. With a single client, ``pipelining`` windows of
        ``bulk_max_size`` go out back to back in one call (the pipelining Beats gets from
        asynchronous batches). With several clients (``loadbalance``, ``worker > 1``), the
        parallel connections are the concurrency and a batch is one window, so that one client
        cannot take the whole queue while the others wait. 0 (take what is queued) when
        ``bulk_max_size <= 0``."""
        if config.bulk_max_size <= 0:
            return 0
        if self.workers(config) > 1:
            return config.bulk_max_size
        return config.bulk_max_size * max(1, config.pipelining)


plugin = LogstashPlugin()
