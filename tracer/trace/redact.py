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
from urllib.parse import unquote_plus

__all__ = ["Redactor", "marker"]

# Each name and shape below is listed with where it comes from (docs/security.md has the table).
SECRET_HEADERS = frozenset(
    [
        "authorization",
        "proxy-authorization",
        "api-key",  # Azure OpenAI
        "x-api-key",  # Anthropic and many gateways
        "apikey",  # Supabase-style gateways
        "cookie",
        "set-cookie",
        "openai-organization",
        "openai-project",
        "x-goog-api-key",  # Gemini
        "anthropic-api-key",
        "x-auth-token",
        "x-access-token",  # GitHub Apps and many gateways
        "private-token",  # GitLab
        "xi-api-key",  # ElevenLabs
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
        "key",  # Gemini
        "api_key",
        "api-key",
        "apikey",
        "token",
        "access_token",  # OAuth 2.0
        "access-token",
        "auth",
        "auth_token",
        "jwt",
        "secret",
        "password",
        "sig",  # Azure SAS
        "signature",
        "subscription-key",  # Azure API Management
        "x-amz-signature",  # AWS SigV4 presigned URLs
        "x-amz-security-token",
        "client_secret",
        "refresh_token",
        "id_token",
        "code",  # OAuth 2.0 authorization code
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

# Subprotocol lists that name a scheme and put the credential in the next item
# ("Sec-WebSocket-Protocol: token, <key>", as Deepgram and others take it from browsers).
SECRET_SUBPROTOCOL_SCHEMES = frozenset(["token", "bearer", "access_token", "api-key", "apikey"])

# Key shapes of common providers. Kept specific enough not to eat ordinary text.
# A hyphen as JSON may write it: "-" or the escape "\u002d" (a key written with escapes).
_DASH = rb"(?:-|\\u002[dD])"
_BODY = rb"(?:[A-Za-z0-9_]|" + _DASH + rb")"
KEY_PATTERNS = (
    rb"sk" + _DASH + rb"(?:(?:proj|ant|svcacct|admin)" + _DASH + rb")?" + _BODY + rb"{16,}",
    rb"sk_(?:live|test)_[A-Za-z0-9]{16,}",  # Stripe secret keys
    rb"rk_(?:live|test)_[A-Za-z0-9]{16,}",  # Stripe restricted keys
    rb"AKIA[0-9A-Z]{16}",  # AWS access key id
    rb"AIza[0-9A-Za-z_\-]{35}",  # Google API key
    rb"ya29\.[A-Za-z0-9_\-]{20,}",  # Google OAuth access token
    rb"gh[pousr]_[A-Za-z0-9]{36,}",  # GitHub tokens
    rb"github_pat_[A-Za-z0-9_]{22,}",  # GitHub fine-grained tokens
    rb"xox[abprs]-[A-Za-z0-9\-]{10,}",  # Slack tokens
    rb"hf_[A-Za-z0-9]{30,}",  # Hugging Face
    rb"ek_[A-Za-z0-9_]{16,}",  # OpenAI Realtime ephemeral client secrets
    rb"sess" + _DASH + rb"[A-Za-z0-9]{20,}",  # OpenAI session keys
    rb"gsk_[A-Za-z0-9]{20,}",  # Groq
    rb"xai" + _DASH + rb"[A-Za-z0-9]{20,}",  # xAI
    rb"pplx" + _DASH + rb"[A-Za-z0-9]{20,}",  # Perplexity
    rb"r8_[A-Za-z0-9]{20,}",  # Replicate
    rb"eyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}",  # JWT
)

KEY_STARTS = (
    rb"[-_.\\KIJ](?<=[kf8pousrbxi9aAy].)"
    rb"(?:(?<=(?:sk|rk|hf|ek|r8|h[pousr]|ub|x[abprs]|ss|lx|ai|29)[-_.\\])"
    rb"|(?<=AK)IA|(?<=AI)za|(?<=eyJ))"
)
"""Where a key of ``KEY_PATTERNS`` can stand: every pattern has a separator (``-``, ``_``,
``.``, or the backslash of ``\\u002d``) right after the two characters that end its fixed
start (``sk-``, ``ghp_``, ``github_``, ``xoxb-``, ``ya29.``), or starts with ``AKIA``,
``AIza`` or ``eyJ``. Searched for, it lets the engine skip in C to the next of the seven
characters it begins with (text has few of them) and reject most of those on the character
before; the patterns' own regular expression tries every position. A payload where this
finds nothing (and no learned secret is) holds no key."""

# A key ends where its run of key characters ends. Where it begins is checked twice: the
# regular expression lets through what follows no letter, digit or "_", or what follows
# something shaped like a JSON escape ("\n", "\u003c"); ``_stands_alone`` then decides the
# cases a fixed-width lookbehind cannot (an escaped backslash, a "-" inside a blob).
_BEFORE = rb"(?:(?<![A-Za-z0-9_])|(?<=\\[nrtbf])|(?<=\\u[0-9a-fA-F]{4}))"
_AFTER = rb"(?![A-Za-z0-9_\-])"
_URLISH = re.compile(r"[^\s'\"<>()]*\?[^\s'\"<>()]*")
_KEY_START = re.compile(KEY_STARTS)
_MARK = re.compile(rb"\[REDACTED:[0-9a-f]{10}\]")
_WORD = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES = frozenset(b"nrtbf")  # JSON escapes that end in a letter
_SEPARATORS = frozenset(b"-+/")  # they separate words in text, but also occur in base64
_RUN = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-+/=")
BLOB_RUN = 400
"""A key after ``-``, ``+`` or ``/`` inside an unbroken run of base64 characters longer than
this is part of an opaque blob (``encrypted_content``, audio), not a token: no key, path
and key together, comes near it, while such blobs run to kilobytes."""


def _escape_ends_at(data: bytes, i: int) -> bool:
    """Whether the backslash at ``data[i]`` starts an escape (is not itself escaped)."""
    n = 0
    while i - n >= 0 and data[i - n] == 0x5C:
        n += 1
    return n % 2 == 1


def _run_length(data: bytes, start: int, end: int) -> int:
    """The length of the unbroken run of base64 characters around ``data[start:end]``,
    counted up to ``BLOB_RUN + 1``."""
    lo = start
    while lo > 0 and data[lo - 1] in _RUN and end - lo <= BLOB_RUN:
        lo -= 1
    hi = end
    while hi < len(data) and data[hi] in _RUN and hi - lo <= BLOB_RUN:
        hi += 1
    return hi - lo


def _run_end(data: bytes, at: int) -> int:
    """Where the run of base64 characters that reaches ``at`` ends."""
    while at < len(data) and data[at] in _RUN:
        at += 1
    return at


def _stands_alone(data: bytes, start: int, end: int) -> bool:
    """Whether a key shape at ``data[start:end]`` is a token of the text that JSON encodes:
    at the start, or after a JSON escape, a quote, white space, punctuation or a separator
    (``-``, ``+``, ``/``, unless inside a blob of base64); not after a letter, digit or ``_``."""
    if start == 0:
        return True
    c = data[start - 1]
    if c in _WORD:
        if c in _ESCAPES and start >= 2 and data[start - 2] == 0x5C:
            return _escape_ends_at(data, start - 2)
        u = start - 6
        if (
            u >= 0
            and data[u] == 0x5C
            and data[u + 1] == 0x75  # "u"
            and all(b in _HEX for b in data[u + 2 : start])
            and _escape_ends_at(data, u)
        ):
            return int(data[u + 2 : start], 16) not in _WORD
        return False
    if c in _SEPARATORS:
        return _run_length(data, start, end) <= BLOB_RUN
    return True


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
        self._keys = b"|".join(b"(?:" + p + b")" for p in KEY_PATTERNS)
        self._extra_patterns = [p.encode("utf-8") for p in extra_patterns]
        self._extra = bool(extra_patterns)  # patterns of unknown shape: no literal pre-check
        self._known: set[bytes] = set()
        self._compile()

    def _compile(self) -> None:
        known = sorted(self._known, key=len, reverse=True)  # longest first
        anywhere = [re.escape(k) for k in known] + self._extra_patterns
        # Group 1: a key shape, which counts only standing alone (checked per match);
        # the rest (learned secrets, --redact patterns) count wherever they are.
        alternatives = [_BEFORE + b"(" + self._keys + b")" + _AFTER]
        alternatives += [b"(?:" + a + b")" for a in anywhere]
        self._regex = re.compile(b"|".join(alternatives))

    def _may_hold(self, data: bytes, pos: int = 0, endpos: int | None = None) -> bool:
        """False when ``data[pos:endpos]`` cannot hold a secret (the literal pre-check)."""
        if self._extra:
            return True
        end = len(data) if endpos is None else endpos
        if _KEY_START.search(data, pos, end) is not None:
            return True
        return any(data.find(k, pos, end) >= 0 for k in self._known)

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
            if sep and credentials.strip():
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
        the known credential-carrying forms replaced by markers: a known prefix
        (``openai-insecure-api-key.KEY``), or an item after a scheme (``token, KEY``)."""
        if not self.enabled:
            return value
        parts = []
        after_scheme = False
        for item in value.split(","):
            name = item.strip()
            prefix = next((p for p in SECRET_SUBPROTOCOL_PREFIXES if name.startswith(p)), None)
            if after_scheme and name:
                self.learn(name)
                item = item.replace(name, marker(name))
            elif prefix is not None and len(name) > len(prefix):
                secret = name[len(prefix) :]
                self.learn(secret)
                item = item.replace(name, prefix + marker(secret))
            after_scheme = name.lower() in SECRET_SUBPROTOCOL_SCHEMES
            parts.append(item)
        return self.text(",".join(parts))

    def url(self, url: str) -> str:
        """A URL (or path with a query) with credential query values replaced by markers.

        Everything else is kept byte for byte: the query is cut at ``&`` by hand, not parsed
        and re-encoded, so ``%20``, ``;`` and a bare ``?flag`` stay as the client sent them.
        """
        if not self.enabled:
            return url
        if "?" in url:
            rest, hash_, fragment = url.partition("#")
            base, _, query_text = rest.partition("?")
            parts = []
            for part in query_text.split("&"):
                k, sep, v = part.partition("=")
                if sep and v and unquote_plus(k).lower() in SECRET_QUERY_KEYS:
                    self.learn(unquote_plus(v))
                    self.learn(v)
                    part = f"{k}={marker(unquote_plus(v))}"
                parts.append(part)
            url = f"{base}?{'&'.join(parts)}" + (f"#{fragment}" if hash_ else "")
        return self.text(url)

    def message(self, value: str) -> str:
        """A line for the screen or a log: the query credentials of every URL in it and
        every key shape replaced (an error that quotes ``--upstream`` with ``?key=``)."""
        if not self.enabled:
            return value
        return self.text(_URLISH.sub(lambda m: self.url(m.group(0)), value))

    def text(self, value: str) -> str:
        if not self.enabled:
            return value
        return self.payload(value.encode("utf-8", errors="surrogatepass")).decode(
            "utf-8", errors="surrogatepass"
        )

    def payload(self, data: bytes) -> bytes:
        """``data`` with every known secret and key-shaped string replaced by its marker."""
        if not self.enabled or not self._may_hold(data):
            return data
        found = self._scan(data, 0, len(data))
        if not found:
            return data
        parts, at = [], 0
        for s, e, mark in found:
            parts += [data[at:s], mark]
            at = e
        parts.append(data[at:])
        return b"".join(parts)

    def payloads(self, datas: list[bytes]) -> list[bytes]:
        """``payload`` of each; one literal pre-check over them all first: a batch with no
        key prefix or known secret anywhere (the common case) comes back as it is. A match
        the join makes across two of them only costs the per-frame pass."""
        if not self.enabled:
            return datas
        if not self._may_hold(b"\0".join(datas)):
            return datas
        return [self.payload(d) for d in datas]

    def find(self, data: bytes, pos: int, endpos: int) -> list[tuple[int, int, bytes]]:
        """Every secret in ``data[pos:endpos]`` as ``(start, end, marker)``; markers already
        there are no secrets. For keys split across frames (``tracer.trace.split``)."""
        if not self.enabled or not self._may_hold(data, pos, endpos):
            return []
        return self._scan(data, pos, endpos)

    def _scan(self, data: bytes, pos: int, endpos: int) -> list[tuple[int, int, bytes]]:
        """The secrets of ``data[pos:endpos]``, in order, not overlapping."""
        out: list[tuple[int, int, bytes]] = []
        search = self._regex.search
        while (m := search(data, pos, endpos)) is not None:
            s, e = m.span()
            if m.group(1) is not None and not _stands_alone(data, s, e):
                # Inside a blob every key shape after a separator is rejected alike: skip
                # the run; otherwise a real key may still start within this match.
                pos = _run_end(data, e) if data[s - 1] in _SEPARATORS else s + 1
                continue
            found = m.group(0)
            if not _MARK.fullmatch(found):
                out.append((s, e, marker(found).encode("ascii")))
            pos = e if e > s else e + 1
        return out
