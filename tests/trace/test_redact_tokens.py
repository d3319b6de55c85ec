"""Redaction never alters an opaque payload: key patterns match only standing alone."""

from __future__ import annotations

import base64
import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from tracer.trace.redact import Redactor, marker

KEY_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def test_ten_thousand_random_base64_blobs_pass_unchanged():
    """Blobs shaped like encrypted_content (URL-safe base64 of 1-8 KB, "gAAAAAB..."), in a
    JSON event as the recorder sees them. Many hold "sk-" runs by chance: the count below
    makes sure the test exercises that."""
    rng = random.Random(20261201)
    redactor = Redactor()
    with_key_shape = 0
    for _ in range(10_000):
        raw = rng.randbytes(rng.randint(768, 6144))
        blob = "gAAAAAB" + base64.urlsafe_b64encode(raw).decode()
        with_key_shape += "sk-" in blob
        payload = json.dumps({"type": "reasoning", "encrypted_content": blob}).encode()
        assert redactor.payload(payload) == payload
    assert with_key_shape > 50


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=8192), st.sampled_from(["urlsafe", "standard"]))
def test_any_base64_blob_passes_unchanged(raw: bytes, alphabet: str):
    encode = base64.urlsafe_b64encode if alphabet == "urlsafe" else base64.b64encode
    payload = b'{"encrypted_content":"' + encode(raw) + b'"}'
    assert Redactor().payload(payload) == payload


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["sk-", "sk-proj-", "sk-svcacct-"]),
    st.text(KEY_CHARS + "_-", min_size=20, max_size=80),
    st.sampled_from(['"{}"', "key {} end", "Bearer {}", "api_key={}&x=1", "{}", "({})"]),
)
def test_keys_standing_alone_are_still_caught(prefix: str, body: str, context: str):
    key = prefix + body
    text = context.format(key).encode()
    out = Redactor().payload(text)
    assert key.encode() not in out
    assert marker(key).encode() in out


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_every_key_shape_passes_the_precheck(data):
    """The pre-check skips the regular expression when it finds no place a key can start:
    a pattern it missed would silently never match. Keys drawn from each pattern's own
    regular expression, inside text, must all pass it."""
    from tracer.trace.redact import KEY_PATTERNS

    pattern = data.draw(st.sampled_from(KEY_PATTERNS))
    key = data.draw(st.from_regex(pattern, fullmatch=True))
    before = data.draw(st.sampled_from([b"", b" ", b'"', b"\\n", b"x="]))
    text = before + key + b'"'
    assert Redactor()._may_hold(text), key
    assert Redactor()._may_hold(b"ab" + text, 2), key


_SHAPES = st.sampled_from(
    ["sk-", "sk-proj-", "sk\\u002dproj\\u002d", "AKIA", "AIza", "ghp_", "xoxb-", "hf_", "eyJ",
     "token", " ", '"', "-", "_", ".eyJ", "[REDACTED:0123456789]", "my-learned-secret",
     "sk_live_", "rk_test_", "ya29.", "github_pat_", "gho_", "xoxa-", "sess-", "sess\\u002d",
     "gsk_", "xai\\u002D", "pplx-", "r8_", "ek_", "\\n", "\\u0020"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_SHAPES, st.text(alphabet=KEY_CHARS, max_size=40)), max_size=12))
def test_the_precheck_changes_no_result(parts: list[str]):
    """With and without the pre-check, payload() and find() give the same answer."""
    redactor = Redactor()
    redactor.learn("my-learned-secret")
    data = "".join(parts).encode()
    unchecked = redactor._scan(data, 0, len(data))
    assert redactor.find(data, 0, len(data)) == unchecked
    out, at = b"", 0
    for s, e, mark in unchecked:
        out += data[at:s] + mark
        at = e
    assert redactor.payload(data) == out + data[at:]


_BODY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_KEYS = st.one_of(
    st.builds(
        lambda prefix, body: prefix + body,
        st.sampled_from(["sk-", "sk-proj-", "ghp_", "hf_", "xai-", "gsk_", "ek_", "ya29."]),
        st.text(_BODY, min_size=40, max_size=60),
    ),
    st.builds(lambda body: "AKIA" + body, st.text(_BODY, min_size=16, max_size=16)),
)
_ENCODE = {
    "base64": base64.b64encode,
    "base64url": base64.urlsafe_b64encode,
    "hex": lambda raw: raw.hex().encode(),
}


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(_ENCODE)), st.binary(min_size=24, max_size=3000),
       st.integers(min_value=0), _KEYS)  # fmt: skip
def test_a_key_like_run_inside_base64_or_hex_passes_byte_for_byte(kind, raw, at, key):
    """Embedded in an opaque run (a letter or digit before it and after it), a key shape
    is no token: the payload passes unchanged."""
    blob = _ENCODE[kind](raw)
    word = [i for i in range(1, len(blob)) if chr(blob[i - 1]).isalnum() and chr(blob[i]).isalnum()]
    if not word:
        return
    i = word[at % len(word)]
    payload = b'{"encrypted_content":"' + blob[:i] + key.encode() + blob[i:] + b'"}'
    assert Redactor().payload(payload) == payload


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.text("abcdefgh ", max_size=12), min_size=2, max_size=6),
    st.sampled_from(["\n", "\t", "\r\n", "<", "/", "+", "-", '"', " ", "=", "a", "7", "_"]),
    _KEYS,
    st.booleans(),
)
def test_in_json_text_a_key_is_redacted_exactly_when_it_stands_as_a_token(words, before, key,
                                                                          escape_lt):  # fmt: skip
    """JSON-escaped text (as json.dumps writes it, or with ``<`` as ``\\u003c``): after an
    escape, a separator, a quote or white space the key is replaced, and nothing else
    changes; after a letter, a digit or ``_`` the text passes byte for byte."""
    text = words[0] + before + key + " " + " ".join(words[1:])
    data = json.dumps({"text": text}).encode()
    if escape_lt:
        data = data.replace(b"<", b"\\u003c")
    out = Redactor().payload(data)
    encoded_key = json.dumps(key)[1:-1].encode()
    if before in ("a", "7", "_"):
        assert out == data
    else:
        assert out == data.replace(encoded_key, marker(key).encode(), 1)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.lists(
            st.sampled_from(
                [b"hello ", b"sk-", b"proj-", b"A" * 20, b"\x00", b"\xff", b'"', b"AKIA",
                 b"IOSFODNN7EXAMPLE", b"sk-proj-" + b"a1B2" * 10, b"my-learned-secret-1"]
            ),
            max_size=6,
        ).map(b"".join),
        max_size=8,
    )
)  # fmt: skip
def test_a_batch_is_redacted_as_each_payload_is(payloads: list[bytes]) -> None:
    """``payloads`` (one pre-check over the batch) gives what ``payload`` gives for each,
    with and without a learned secret."""
    for learned in (None, "my-learned-secret-1"):
        redactor = Redactor()
        if learned:
            redactor.learn(learned)
        assert redactor.payloads(payloads) == [redactor.payload(p) for p in payloads]
    assert Redactor(enabled=False).payloads(payloads) == payloads
