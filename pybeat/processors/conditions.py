"""Beats' ``when`` conditions now live in :mod:`pybeat.conditions` (plugins get them from
``pybeat.api``); this name stays for code that imported them from here."""

from pybeat.conditions import Condition, ConditionError, build_condition

__all__ = ["Condition", "ConditionError", "build_condition"]
