"""Configuration: reading (loader.py), the schema (models.py), error messages (errors.py) and
the validated whole with plugin settings resolved (settings.py)."""

from pybeat.config.loader import ConfigError, RawConfig, load
from pybeat.config.settings import OutputSetup, ProtocolSetup, Settings, load_settings

__all__ = ["ConfigError", "OutputSetup", "ProtocolSetup", "RawConfig", "Settings", "load", "load_settings"]
