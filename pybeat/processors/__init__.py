"""Event processors (libbeat's): built-ins, ``when`` conditions, and building a processor list
from config. Each built-in is a plugin in the ``pybeat.processors`` entry-point group."""

from pybeat.processors.build import build_processors
from pybeat.conditions import Condition, ConditionError, build_condition

__all__ = ["Condition", "ConditionError", "build_condition", "build_processors"]
