"""The ``file`` output: NDJSON files with size-based rotation, as Beats' file output."""
