"""``output.logstash``: the plugin object the ``pybeat.outputs`` entry point names.

Worker layout, as Beats: with ``loadbalance: false`` there are ``worker`` clients, each
sticking to one (random) host and failing over to the next; with ``loadbalance: true`` there
are ``worker`` clients *per host*, all pulling batches from the same queue, so a faster host
takes more and a dead host's batches go to the others. The agent owns retries and backoff
(``max_retries`` and ``backoff.*`` become the group's retry policy).
"""

from __future__ import annotations

from pybeat.api import AdminContext, OutputContext, OutputGroup, PluginSetupError, RetryPolicy
from pybeat.outputs.logstash import admin
from pybeat.outputs.logstash.config import LogstashConfig
from pybeat.outputs.logstash.output import LogstashClient, SharedState
from pybeat.outputs.logstash.tls import TlsError, build_tls


class LogstashPlugin:
    name = "logstash"
    api_version = "1.0"
    config_model = LogstashConfig

    def create(self, config: LogstashConfig, ctx: OutputContext) -> OutputGroup:
        shared = SharedState()
        if ctx.metrics is not None:
            ctx.metrics.register("", shared.snapshot)
        tls = None
        if config.tls_enabled:
            try:
                tls = build_tls(config.ssl)
            except TlsError as exc:
                raise PluginSetupError(f"output.logstash.ssl: {exc}") from exc
        if config.ssl.restart_on_cert_change.enabled and ctx.logger is not None:
            ctx.logger.warning("ssl.restart_on_cert_change is not supported yet: restart pybeat after "
                               "replacing certificates", output="logstash")
        hosts = config.addresses
        clients = []
        for index in range(self.workers(config)):
            own, fallback = hosts, []
            if config.loadbalance:
                i = index % len(hosts)
                own, fallback = [hosts[i]], hosts[i + 1:] + hosts[:i]
            clients.append(LogstashClient(config, ctx, shared, own, tls, fallback_hosts=fallback))
        where = ", ".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in hosts)
        return OutputGroup(clients, batch_size=self.batch_size(config),
                           retry=RetryPolicy(config.max_retries, config.backoff.init, config.backoff.max),
                           location=lambda: where)

    def test_connection(self, config: LogstashConfig, ctx: AdminContext) -> bool:
        return admin.test_output(config, ctx.beat, ctx.out)

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
