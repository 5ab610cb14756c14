"""Declarative multi-step pipelines: definition, validation, quotes, fingerprints and resume."""
