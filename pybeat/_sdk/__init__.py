"""The implementation of the plugin contract that ``pybeat.api`` publishes.

Private: plugins import these names from :mod:`pybeat.api`, never from here. The contract is
split into a module per plugin kind so that the core's own helpers that plugins may use
(``pybeat.codec``, ``pybeat.netconfig``, ``pybeat.envelope``) can build on it without an import
cycle through ``pybeat.api``.
"""
