"""The ``pybeat.outputs`` entry point for ``output.elasticsearch``.

One connection pool per output, shared by its ``worker`` clients; each client has its own
encoder. The agent owns retries and backoff (``max_retries``, ``backoff.*`` become the group's
retry policy). Capabilities: ``test output``, ``setup``, ``export template|ilm-policy``, and the
top-level ``cloud`` section (Elastic Cloud's ``cloud.id``/``cloud.auth``).
"""

from __future__ import annotations

from typing import Any

from pybeat.api import AdminContext, OutputContext, OutputGroup, PluginSetupError, RetryPolicy
from pybeat.outputs.elasticsearch import admin
from pybeat.outputs.elasticsearch.cloudid import apply_cloud
from pybeat.outputs.elasticsearch.config import ElasticsearchConfig
from pybeat.outputs.elasticsearch.output import ElasticsearchOutput, _Shared


class ElasticsearchPlugin:
    name = "elasticsearch"
    api_version = "1.0"
    config_model = ElasticsearchConfig
    exports = frozenset({"template", "ilm-policy"})
    top_level_sections = frozenset({"cloud"})

    def create(self, config: ElasticsearchConfig, ctx: OutputContext) -> OutputGroup:
        cfg = config.effective()
        try:
            shared = _Shared(cfg, ctx)
        except ValueError as exc:  # a TLS file that cannot be read, a bad proxy URL
            raise PluginSetupError(str(exc)) from None
        if ctx.metrics is not None:
            ctx.metrics.register("", shared.stats.snapshot)
        clients = [ElasticsearchOutput(cfg, ctx, shared) for _ in range(max(1, cfg.worker_count))]
        hosts = ", ".join(h.url for h in shared.conn.hosts)
        return OutputGroup(
            clients,
            batch_size=cfg.bulk_max_size if cfg.bulk_max_size > 0 else 0,
            retry=RetryPolicy(cfg.max_retries, cfg.backoff.init, cfg.backoff.max),
            location=lambda: hosts,
        )

    # -- capabilities (pybeat test output, setup, export) --------------------------------------
    def test_connection(self, config: ElasticsearchConfig, ctx: AdminContext) -> bool:
        return admin.test_output(config, ctx.beat, ctx.out)

    def setup(self, config: ElasticsearchConfig, ctx: AdminContext) -> None:
        admin.setup_index_management(config, dict(ctx.setup), ctx.beat, ctx.out, ctx.field_types)

    def export(self, what: str, config: ElasticsearchConfig | None, ctx: AdminContext) -> Any:
        version = ctx.options.get("es.version")
        if what == "template":
            return admin.export_template(config, dict(ctx.setup), ctx.beat, version, ctx.field_types)
        flavour = "opensearch" if (version or "").lower().startswith("opensearch") else "elasticsearch"
        return admin.export_ilm_policy(config, dict(ctx.setup), ctx.beat, flavour=flavour)

    def apply_top_level(self, data: dict[str, Any]) -> None:
        """``cloud.id``/``cloud.auth`` rewrite ``output.elasticsearch`` as libbeat does."""
        apply_cloud(data)


plugin = ElasticsearchPlugin()
