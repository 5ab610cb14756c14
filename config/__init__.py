"""The ground floor: configuration from the environment (``STUDIO_*``), read by every process."""

from config.settings import StudioSettings, get_settings

__all__ = [
    "get_settings",
    "StudioSettings",
]
