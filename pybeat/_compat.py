"""pybeat.api 0.1 served on top of 1.0: plugins that declare no ``api_version``.

What changed for them (``CHANGELOG.md``): an output's ``create`` built one client per worker
(``workers(config)`` calls) and the client did its own backoff; a processor's ``create`` got the
``BeatInfo``; ``OutputContext.extra`` carried ``path_data``, ``setup``, ``file_suffix`` and
``stdout``; ``ProtocolContext.raw_close``/``emit_closed`` were public. All of that keeps working
here; the deprecated names warn (``DeprecationWarning``) and the agent logs once per plugin that
it is served as 0.1.
"""

from __future__ import annotations

import warnings
from typing import Any

from pybeat.api import OutputContext, OutputGroup, PluginSetupError, RetryPolicy

#: 0.1 outputs did their own backoff and max_retries: the agent adds a short backoff of its own
#: (a client that never settles must not spin) and never drops for them.
LEGACY_RETRY = RetryPolicy(max_retries=-1, backoff_init=0.1, backoff_max=5.0)


def legacy_output_group(plugin: Any, config: Any, ctx: OutputContext) -> OutputGroup:
    """One client per ``workers(config)``, as the 0.1 pipeline built them."""
    workers = max(1, int(plugin.workers(config)))
    clients = [plugin.create(config, ctx) for _ in range(workers)]
    size = plugin.batch_size(config)
    return OutputGroup(clients=clients, batch_size=size if size and size > 0 else 0, retry=LEGACY_RETRY)


def output_group(plugin: Any, config: Any, ctx: OutputContext, legacy: bool) -> OutputGroup:
    if legacy:
        return legacy_output_group(plugin, config, ctx)
    group = plugin.create(config, ctx)
    if not isinstance(group, OutputGroup):
        raise PluginSetupError(f"create() returned {type(group).__name__}, not an OutputGroup "
                               "(pybeat.api 1.0; a 0.1 output must not declare api_version)")
    return group


def log_deprecations(logger: Any) -> None:
    """Log each deprecated use of pybeat.api once per place in a plugin's code (Python does
    not show DeprecationWarnings by default): ``deprecated pybeat.api use`` with the text and
    the plugin's file and line."""
    warnings.filterwarnings("default", category=DeprecationWarning, message=r".*pybeat\.api")
    shown = warnings.showwarning

    def show(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None,
             line: str | None = None) -> None:
        if issubclass(category, DeprecationWarning) and "pybeat.api" in str(message):
            logger.warning("deprecated pybeat.api use", detail=str(message), where=f"{filename}:{lineno}")
            return
        shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show
