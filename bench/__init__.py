"""The orchestration benchmark (``make bench``): scripts, not a library; nothing to import."""

__all__: list[str] = []
