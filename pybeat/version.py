"""pybeat's version (also ``agent.version`` in events)."""

from importlib.metadata import PackageNotFoundError, version as _dist_version

try:
    __version__ = _dist_version("pybeat")
except PackageNotFoundError:  # a source tree that was never installed: pyproject.toml has it
    import tomllib
    from pathlib import Path

    try:
        with (Path(__file__).resolve().parent.parent / "pyproject.toml").open("rb") as _fh:
            __version__ = tomllib.load(_fh)["project"]["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        __version__ = "0+unknown"
