"""Untrusted text (model output, prompts, data) shown in failure messages: printable and bounded."""

from __future__ import annotations

MAX_SHOWN = 600  # characters of untrusted text shown in a failure message


def shorten(text: str, limit: int = MAX_SHOWN) -> str:
    """Printable, bounded rendering of model output or prompts."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    text = "".join(ch if ch.isprintable() or ch in "\n\t" else f"\\x{ord(ch):02x}" for ch in text)
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]} … [{len(text) - limit} characters cut] … {text[-half:]}"
