"""The ``console`` output: events as JSON lines on standard output."""
