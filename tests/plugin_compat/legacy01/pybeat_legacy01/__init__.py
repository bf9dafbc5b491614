"""Plugins written for pybeat.api 0.1: ``legacy_kv`` (protocol), ``legacy_jsonl`` (output),
``legacy_stamp`` (processor). Only names of 0.1's ``pybeat.api.__all__`` are used."""
