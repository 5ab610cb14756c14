"""Hugging Face inference through the official ``huggingface_hub`` SDK (text-to-image)."""

from __future__ import annotations

from providers.huggingface.client import HuggingFaceClient

__all__ = ["HuggingFaceClient"]
