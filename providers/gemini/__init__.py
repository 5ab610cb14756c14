"""Google's Gemini API through the official ``google-genai`` SDK (native image output)."""

from __future__ import annotations

from providers.gemini.client import GeminiClient

__all__ = ["GeminiClient"]
