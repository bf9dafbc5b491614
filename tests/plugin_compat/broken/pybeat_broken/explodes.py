"""Importing this module fails, as a plugin with a bug at import time does."""

raise RuntimeError("pybeat_broken.explodes cannot be imported (on purpose)")
