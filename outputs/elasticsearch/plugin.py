"""The ``pybeat.outputs`` entry point for ``output.elasticsearch``.

One connection pool per output, shared by its ``worker`` clients; each worker has its own
encoder and backoff state. The output's counters are registered as ``output.elasticsearch.*``.
"""

from __future__ import annotations

from pybeat.api import OutputContext
from pybeat.outputs.elasticsearch.config import ElasticsearchConfig
from pybeat.outputs.elasticsearch.output import ElasticsearchOutput, _Shared


class ElasticsearchPlugin:
    name = "elasticsearch"
    config_model = ElasticsearchConfig

    def create(self, config: ElasticsearchConfig, ctx: OutputContext) -> ElasticsearchOutput:
        cfg = config.effective()
        key = f"_elasticsearch_output_{ctx.name}"
        shared = ctx.extra.get(key)
        if shared is None:
            shared = ctx.extra[key] = _Shared(cfg, ctx)
            register = getattr(ctx.metrics, "register", None)
            if callable(register):
                register(f"output.{ctx.name}.es", shared.stats.snapshot)
        return ElasticsearchOutput(cfg, ctx, shared)

    def workers(self, config: ElasticsearchConfig) -> int:
        return config.effective().worker_count

    def batch_size(self, config: ElasticsearchConfig) -> int:
        size = config.effective().bulk_max_size
        return size if size > 0 else 0


plugin = ElasticsearchPlugin()
