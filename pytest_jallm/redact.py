"""Secrets out of messages: the one place that redacts them.

:func:`redact` replaces each secret in a text with ``***``, also where it is URL-encoded (partly
or twice), JSON- or HTML-escaped, or inside base64 (``user:key`` in a Basic auth header); if a
secret can still be decoded out of the result, the whole text is withheld. The openai backend
redacts its API key with it; downloads redact the credentials of ``--jallm-url-map`` mirrors,
which :func:`url_secrets` finds: the user-info's password (or a lone user name, the usual
token-as-user form), query values whose name says secret (``token``, ``X-Amz-Signature``,
``sig``, ``key``…) and a path segment after one so named (``/api_key/…``, ``/token/…``).
"""

from __future__ import annotations

import base64
import functools
import html
import re
import urllib.parse
from typing import Iterable

MIN_SECRET = 4  # shorter values are not redacted (they would garble every message)
# names of query parameters (and path segments) whose value is a credential
_SECRET_NAME = re.compile(r"token|secret|passw|signature|credential|api[-_]?key|access[-_]?key"
                          r"|(?:^|[-_.])(?:sig|key|pwd|auth|session)(?:$|[-_.])", re.IGNORECASE)


def _char_pattern(ch: str) -> str:
    """One character of a secret as written raw or escaped (URL, JSON, HTML, backslash)."""
    forms = [re.escape(ch), "".join(f"%(?:25)*{x:02X}" for x in ch.encode("utf-8"))]  # %2D, %252D (twice)
    code = ord(ch)
    forms += [rf"\\+u{code:04X}", rf"&#0*{code};", rf"&#[xX]0*{code:X};"] + ([rf"\\+x{code:02X}"] if code < 256 else [])
    if not ch.isalnum():
        forms.append(r"\\+" + re.escape(ch))  # JSON's \/
    if ch == " ":
        forms.append(r"\+")
    return "(?:" + "|".join(f for f in forms if f) + ")"


def _base64_fragments(secret: str) -> list[str]:
    """The parts of base64 (standard and URL-safe) of *any* text containing ``secret``
    (e.g. ``user:key`` in Basic auth) that do not depend on the surrounding bytes."""
    raw = secret.encode("utf-8")
    fragments = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        start = 4 if offset else 0  # the first group mixes in the unknown prefix
        end = len(encoded) - (4 if (offset + len(raw)) % 3 else 0)  # the last group the unknown suffix
        fragment = encoded[start:end]
        if len(fragment) >= 8:
            fragments += [fragment, fragment.replace("+", "-").replace("/", "_")]
    return fragments


@functools.lru_cache(maxsize=32)
def _secret_pattern(secret: str) -> re.Pattern[str]:
    alternatives = ["".join(_char_pattern(c) for c in secret)]
    alternatives += [re.escape(f) for f in _base64_fragments(secret)]
    return re.compile("|".join(alternatives), re.IGNORECASE)


def redact(text: str, secrets: Iterable[str | None], what: str = "a secret") -> str:
    """``text`` with every secret (and its common encodings) replaced by ``***``; withheld
    whole (naming ``what``) when a secret still decodes out of it."""
    wanted = sorted({s for s in secrets if s and len(s) >= MIN_SECRET}, key=len, reverse=True)
    for secret in wanted:
        text = _secret_pattern(secret).sub("***", text)
    for secret in wanted:
        decoded = text
        for _ in range(3):
            decoded = html.unescape(urllib.parse.unquote(decoded))
            if any(secret in d for d in (decoded, decoded.replace("\\", ""), decoded.replace("+", " "))):
                return f"[withheld: the text contained {what}]"
    return text


def redact_secret(text: str, secret: str | None) -> str:
    """:func:`redact` for one secret, the API key."""
    return redact(text, [secret], "the API key")


def url_secrets(url: str) -> list[str]:
    """The credentials a URL carries (see the module docstring), raw and percent-decoded."""
    try:
        parts = urllib.parse.urlsplit(url)
        password, user = parts.password, parts.username
    except ValueError:
        return []
    found = [password] if password else [user] if user else []
    segments = parts.path.split("/")
    found += [value for name, value in zip(segments, segments[1:], strict=False) if value and _SECRET_NAME.search(name)]
    found += [value for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
              if value and _SECRET_NAME.search(name)]
    found += [urllib.parse.unquote(s) for s in found]
    return [s for s in dict.fromkeys(found) if len(s) >= MIN_SECRET]


def without_credentials(url: str) -> str:
    """The URL with its user-info, query and fragment dropped (for identities and messages)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
