"""Redaction of secrets before anything reaches a trace: headers, query strings, payloads.

A secret is replaced by a marker ``[REDACTED:xxxxxxxxxx]`` derived from a hash of the secret,
so the same secret always gets the same marker (in any trace: diffs still line up) and the
marker reveals nothing usable. Secrets found in headers are also learned and scrubbed from
payloads wherever they appear, whatever they look like.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from urllib.parse import parse_qsl, urlencode

__all__ = ["Redactor", "marker"]

SECRET_HEADERS = frozenset(
    [
        "authorization",
        "proxy-authorization",
        "api-key",
        "x-api-key",
        "cookie",
        "set-cookie",
        "openai-organization",
        "openai-project",
        "x-goog-api-key",
        "anthropic-api-key",
        "x-auth-token",
        "x-amz-security-token",
        "ocp-apim-subscription-key",  # Azure API Management
        "x-portkey-api-key",  # Portkey
        "cf-aig-authorization",  # Cloudflare AI Gateway
        "x-codex-api-key",  # Codex
        "chatgpt-account-id",  # the ChatGPT backend's account
        "x-stainless-api-key",
        "helicone-auth",  # Helicone
        "x-litellm-api-key",  # LiteLLM
    ]
)

SECRET_QUERY_KEYS = frozenset(
    [
        "key",
        "api_key",
        "api-key",
        "apikey",
        "token",
        "access_token",
        "auth",
        "secret",
        "password",
        "sig",
        "signature",
        "x-amz-signature",
        "x-amz-security-token",
        "client_secret",
        "refresh_token",
        "id_token",
        "code",
    ]
)

# WebSocket subprotocols that carry a credential after a known prefix: the browser form of
# Realtime authentication ("openai-insecure-api-key.<key>", ...).
SECRET_SUBPROTOCOL_PREFIXES = (
    "openai-insecure-api-key.",
    "openai-organization.",
    "openai-project.",
    "openai-insecure-ephemeral-key.",
)

# Key shapes of common providers. Kept specific enough not to eat ordinary text.
# A hyphen as JSON may write it: "-" or the escape "\u002d" (a key written with escapes).
_DASH = rb"(?:-|\\u002[dD])"
KEY_PATTERNS = (
    rb"sk"
    + _DASH
    + rb"(?:(?:proj|ant|svcacct|admin)"
    + _DASH
    + rb")?(?:[A-Za-z0-9_]|"
    + _DASH
    + rb"){16,}",  # OpenAI, Anthropic
    rb"AKIA[0-9A-Z]{16}",  # AWS access key id
    rb"AIza[0-9A-Za-z_\-]{35}",  # Google API key
    rb"gh[pousr]_[A-Za-z0-9]{36,}",  # GitHub tokens
    rb"xox[abprs]-[A-Za-z0-9\-]{10,}",  # Slack tokens
    rb"hf_[A-Za-z0-9]{30,}",  # Hugging Face
    rb"eyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}",  # JWT
)

KEY_PREFIXES = (b"sk", b"AKIA", b"AIza", b"gh", b"xox", b"hf_", b"eyJ")
"""What every pattern of ``KEY_PATTERNS`` starts with. A payload holding none of these (and
none of the learned secrets) holds no key: ``bytes.find`` tells that many times faster than
the patterns' regular expression, whose lookbehind is tried at every position."""

# A key counts only as a token of its own: not inside a longer run of base64 or key
# characters (an opaque blob such as encrypted_content can hold "sk-..." by chance).
_BEFORE = rb"(?<![A-Za-z0-9_+/\-])"
_AFTER = rb"(?![A-Za-z0-9_\-])"
_MARK = re.compile(rb"\[REDACTED:[0-9a-f]{10}\]")


def marker(secret: bytes | str) -> str:
    """The stable marker that replaces ``secret``."""
    data = secret.encode("utf-8") if isinstance(secret, str) else secret
    return f"[REDACTED:{hashlib.sha256(data).hexdigest()[:10]}]"


class Redactor:
    """Replaces secrets in headers, URLs and payloads with stable markers.

    ``extra_patterns`` are regular expressions (text) for more secrets to scrub from
    payloads. A disabled redactor (``enabled=False``) passes everything through unchanged.
    """

    def __init__(self, extra_patterns: Sequence[str] = (), *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._patterns = [_BEFORE + p + _AFTER for p in KEY_PATTERNS]
        self._patterns += [p.encode("utf-8") for p in extra_patterns]
        self._extra = bool(extra_patterns)  # patterns of unknown shape: no literal pre-check
        self._known: set[bytes] = set()
        self._compile()

    def _compile(self) -> None:
        known = sorted(self._known, key=len, reverse=True)  # longest first
        alternatives = [re.escape(k) for k in known] + self._patterns
        self._regex = re.compile(b"|".join(b"(?:" + a + b")" for a in alternatives))
        # Literals only: the regular expression engine scans for their first bytes in C.
        literals = (*KEY_PREFIXES, *known)
        self._literals = re.compile(b"|".join(re.escape(lit) for lit in literals))

    def _may_hold(self, data: bytes, pos: int = 0, endpos: int | None = None) -> bool:
        """False when ``data[pos:endpos]`` cannot hold a secret (the literal pre-check)."""
        if self._extra:
            return True
        end = len(data) if endpos is None else endpos
        return self._literals.search(data, pos, end) is not None

    @property
    def shortest(self) -> int:
        """No secret ``find`` finds is shorter than this: learned ones have 8 characters or
        more and the key patterns more still; a ``--redact`` pattern may match anything."""
        return 1 if self._extra else 8

    def learn(self, secret: str) -> None:
        """Scrub this exact value from every later payload too (8 characters or more)."""
        if len(secret) >= 8:
            data = secret.encode("utf-8")
            if data not in self._known:
                self._known.add(data)
                self._compile()

    def headers(self, headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Headers with the values of credential headers replaced by markers."""
        out = []
        for name, value in headers:
            if self.enabled and name.lower() in SECRET_HEADERS and value:
                out.append((name, self._header_value(name, value)))
            elif self.enabled and name.lower() == "sec-websocket-protocol":
                out.append((name, self.subprotocols(value)))
            elif self.enabled:
                out.append((name, self.text(value)))
            else:
                out.append((name, value))
        return out

    def _header_value(self, name: str, value: str) -> str:
        lname = name.lower()
        if lname in ("authorization", "proxy-authorization"):
            scheme, sep, credentials = value.partition(" ")
            if sep and credentials:
                self.learn(credentials.strip())
                return f"{scheme} {marker(credentials.strip())}"
        if lname in ("cookie", "set-cookie"):
            parts = []
            for part in value.split(";"):
                k, sep, v = part.partition("=")
                if sep and v.strip():
                    self.learn(v.strip())
                    parts.append(f"{k}={marker(v.strip())}")
                else:
                    parts.append(part)
            return ";".join(parts)
        self.learn(value)
        return marker(value)

    def subprotocols(self, value: str) -> str:
        """A ``Sec-WebSocket-Protocol`` value (or one subprotocol) with the credentials of
        the known credential-carrying forms replaced by markers."""
        if not self.enabled:
            return value
        parts = []
        for item in value.split(","):
            name = item.strip()
            prefix = next((p for p in SECRET_SUBPROTOCOL_PREFIXES if name.startswith(p)), None)
            if prefix is not None and len(name) > len(prefix):
                secret = name[len(prefix) :]
                self.learn(secret)
                item = item.replace(name, prefix + marker(secret))
            parts.append(item)
        return self.text(",".join(parts))

    def url(self, url: str) -> str:
        """A URL (or path with a query) with key-like query values replaced by markers."""
        if not self.enabled or "?" not in url:
            return self.text(url) if self.enabled else url
        # Split by hand: urlsplit refuses some hostile URLs ("Invalid IPv6 URL").
        rest, hash_, fragment = url.partition("#")
        base, _, query_text = rest.partition("?")
        query = []
        for k, v in parse_qsl(query_text, keep_blank_values=True):
            if k.lower() in SECRET_QUERY_KEYS and v:
                self.learn(v)
                query.append((k, marker(v)))
            else:
                query.append((k, v))
        rebuilt = f"{base}?{urlencode(query, safe='[]:')}" + (f"#{fragment}" if hash_ else "")
        return self.text(rebuilt)

    def text(self, value: str) -> str:
        if not self.enabled:
            return value
        return self.payload(value.encode("utf-8")).decode("utf-8", errors="replace")

    def payload(self, data: bytes) -> bytes:
        """``data`` with every known secret and key-shaped string replaced by its marker."""
        if not self.enabled or not self._may_hold(data):
            return data
        return self._regex.sub(self._replace, data)

    def find(self, data: bytes, pos: int, endpos: int) -> list[tuple[int, int, bytes]]:
        """Every secret in ``data[pos:endpos]`` as ``(start, end, marker)``; markers already
        there are no secrets. For keys split across frames (``tracer.trace.split``)."""
        if not self.enabled or not self._may_hold(data, pos, endpos):
            return []
        return [
            (m.start(), m.end(), marker(m.group(0)).encode("ascii"))
            for m in self._regex.finditer(data, pos, endpos)
            if not _MARK.fullmatch(m.group(0))
        ]

    @staticmethod
    def _replace(match: re.Match[bytes]) -> bytes:
        found = match.group(0)
        if _MARK.fullmatch(found):
            return found
        return marker(found).encode("ascii")
