"""pybeat's version (also ``agent.version`` in events)."""

from importlib.metadata import PackageNotFoundError, version as _dist_version

try:
    __version__ = _dist_version("pybeat")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.1.0"
