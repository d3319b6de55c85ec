"""Keys split across frames: the sans-I/O joiner between the recorder's queue and the writer."""

from __future__ import annotations

import json
import random
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from tracer.trace.records import Close
from tracer.trace.redact import Redactor, marker
from tracer.trace.split import MAX_TOKEN, SplitKeys

CLIENT, SERVER, TEXT, CONT, PING = 0, 1, 1, 0, 9


def _delta(text: str, kind: str = "response.output_text.delta") -> bytes:
    return json.dumps({"type": kind, "item_id": "msg_1", "delta": text}).encode()


def _run(items: list[tuple], redactor: Redactor) -> list:
    split = SplitKeys(redactor.find, redactor.shortest)  # as the recorder builds it
    out = []
    for item in items:
        out += split.push(item)
    return out + split.release()


def test_a_key_over_random_delta_splits_never_survives_and_order_is_kept():
    rng = random.Random(7)
    for _ in range(300):
        key = "sk-proj-" + "".join(rng.choice(string.ascii_letters) for _ in range(30))
        words = ["".join(rng.choice("abcdefgh ") for _ in range(rng.randint(0, 40)))]
        text = f"{words[0]} {key} tail text."
        cuts = sorted(rng.sample(range(1, len(text)), rng.randint(1, 12)))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        items, seq = [], 0
        for piece in pieces:
            seq += 1
            items.append((1, seq, SERVER, TEXT, _delta(piece), True, seq))
            if rng.random() < 0.3:  # another connection's frame in between
                seq += 1
                items.append((2, seq, SERVER, TEXT, b'{"type":"x"}', True, seq))
        redactor = Redactor()
        out = _run(items, redactor)
        for conn in (1, 2):  # every frame, in order on its connection
            assert [o[6] for o in out if o[0] == conn] == [i[6] for i in items if i[0] == conn]
        written = [redactor.payload(o[4]) for o in out]
        assert not any(key[8:20].encode() in w for w in written)
        pairs = zip(written, out, strict=True)
        joined = "".join(json.loads(w)["delta"] for w, o in pairs if o[0] == 1)
        assert joined == f"{words[0]} {marker(key)} tail text."


def test_fragments_join_across_a_ping_and_plain_text_is_untouched():
    key = "sk-ant-" + "Q" * 40
    message = f'{{"input": "{key}"}}'.encode()
    cut = message.index(b"Q" * 10)
    items = [
        (1, 1, CLIENT, TEXT, message[:cut], False, 1),
        (1, 2, CLIENT, PING, b"", True, 2),
        (1, 3, CLIENT, CONT, message[cut:], True, 3),
        (1, 4, CLIENT, TEXT, b'{"input": "plain words"}', True, 4),
    ]
    out = _run(items, Redactor())
    assert b"".join(o[4] for o in out if o[3] != PING) == (
        f'{{"input": "{marker(key)}"}}{{"input": "plain words"}}'.encode()
    )
    assert [o[6] for o in out] == [1, 2, 3, 4]


def test_holding_is_bounded_by_the_open_token():
    """A stream of one endless token (base64 in deltas) is let go past MAX_TOKEN bytes."""
    split = SplitKeys(Redactor().find)
    released, most_held = 0, 0
    for seq in range(1, 400):
        released += len(split.push((1, seq, SERVER, TEXT, _delta("A" * 100), True, seq)))
        most_held = max(most_held, seq - released)
    assert most_held <= MAX_TOKEN // 100 + 2
    assert released + len(split.release()) == 399


def test_a_close_lets_the_connection_go():
    split = SplitKeys(Redactor().find)
    assert split.push((1, 1, SERVER, TEXT, _delta("sk-pr"), True, 1)) == []
    assert split.holding
    out = split.push(Close(conn=1, t_ns=2, code=1000))
    assert len(out) == 2 and not split.holding


def test_random_base64_blobs_split_into_fragments_come_out_unchanged():
    rng = random.Random(11)
    alphabet = string.ascii_letters + string.digits + "-_"
    redactor = Redactor()
    for n in range(300):
        blob = ("".join(rng.choice(alphabet) for _ in range(4096))).encode()
        message = b'{"encrypted_content": "' + blob + b'"}'
        cut = rng.randint(1, len(message) - 1)
        items = [(1, 1, CLIENT, TEXT, message[:cut], False, 1),
                 (1, 2, CLIENT, CONT, message[cut:], True, 2)]  # fmt: skip
        out = _run(items, redactor)
        assert b"".join(redactor.payload(o[4]) for o in out) == message, n


def test_short_secrets_of_a_redact_pattern_are_still_joined():
    """Below 8 bytes the joiner searches nothing for the built-in patterns (no key is that
    short), but a --redact pattern may match less: its short secret split over two deltas
    is still found. With the built-in patterns alone, a short run is let through as is."""
    items = [(1, n, SERVER, TEXT, _delta(p), True, n) for n, p in enumerate(["x PIN4", "2 y"], 1)]
    custom = Redactor([r"PIN\d\d"])
    assert custom.shortest == 1
    written = [custom.payload(o[4]) for o in _run(items, custom)]
    assert b"PIN" not in b"".join(written)
    joined = "".join(json.loads(w)["delta"] for w in written)
    assert joined == f"x {marker('PIN42')} y"
    plain = Redactor()
    assert plain.shortest == 8
    assert [o[4] for o in _run(items, plain)] == [i[4] for i in items]


def _general(payload: bytes) -> tuple | None:
    """What the joiner's general path takes of a text message: its delta stream and the
    span of its delta text (None: not a text delta)."""
    from tracer.trace.split import _DELTA, _TYPE, _stream_of

    typed = _TYPE.search(payload)
    kind = typed.group(1) if typed else b""
    if not kind.endswith(b".delta") or kind.endswith(b"audio.delta"):
        return None
    delta = _DELTA.search(payload)
    return None if delta is None else (kind, *_stream_of(payload), delta.span(1))


_PIECES = st.sampled_from(
    ['"', "\\", ",", "}", "{", '"item_id"', '"delta":"', "sk-", "é", "\n", " ", "a", "0"]
)


@settings(max_examples=400, deadline=None)
@given(
    kind=st.sampled_from(["response.output_text.delta", "response.output_audio.delta",
                          "response.output_text.done", "x.delta", 'a"b.delta']),
    seq=st.one_of(st.none(), st.integers(0, 10**6)),
    item=st.text(string.ascii_letters + "_-,\"}", max_size=12),
    out=st.one_of(st.integers(0, 99), st.text(max_size=3)),
    text=st.lists(_PIECES, max_size=12).map("".join),
    tail=st.sampled_from(["", ',"logprobs":[]', ',"item_id":"other"', "}"]),
    compact=st.booleans(),
)  # fmt: skip
def test_the_compact_delta_match_takes_what_the_general_path_takes(
    kind: str, seq: int | None, item: str, out: object, text: str, tail: str, compact: bool
) -> None:
    """The one-match reading of a compact delta gives the stream and delta span that the
    general path's searches give, on well-formed and odd events alike."""
    from tracer.trace.split import _compact_delta

    body: dict[str, object] = {"type": kind}
    if seq is not None:
        body["sequence_number"] = seq
    body |= {"item_id": item, "output_index": out, "content_index": 0, "delta": text}
    sep = (",", ":") if compact else (", ", ": ")
    for payload in (
        json.dumps(body, separators=sep, ensure_ascii=False).encode()[:-1] + tail.encode() + b"}",
        json.dumps(body, separators=sep).encode(),
    ):
        m = _compact_delta(payload)
        if m is not None:
            assert (m.group(1), m.group(2), m.group(3), m.group(4), m.span(5)) == _general(
                payload
            ), payload


def test_a_service_delta_takes_the_one_match_reading() -> None:
    from tracer.trace.split import _compact_delta

    payload = (
        b'{"type":"response.output_text.delta","sequence_number":7,"item_id":"msg_0a1",'
        b'"output_index":0,"content_index":0,"delta":"sk-pr\\"oj","logprobs":[]}'
    )
    m = _compact_delta(payload)
    assert m is not None and m.group(5) == b'sk-pr\\"oj'
    assert (m.group(1), m.group(2), m.group(3), m.group(4), m.span(5)) == _general(payload)


_KEYS = st.sampled_from(["sk-proj-" + "Q7" * 12, "ghp_" + "x" * 36, "plain words here"])
_OTHERS = st.one_of(
    st.tuples(st.just("done"), st.integers(1, 2), st.sampled_from(["msg_a", ""])),
    st.tuples(st.just("frag"), st.integers(1, 2), st.sampled_from(["", "sk-", "ab"]),
              st.booleans()),
    st.tuples(st.just("other"), st.integers(1, 2)),
    st.tuples(st.just("close"), st.integers(1, 2)),
)  # fmt: skip


@st.composite
def _events(draw: st.DrawFn) -> list[tuple]:
    """Delta streams, each a text (a key in it or not) cut at random places, interleaved
    with one another and with other events."""
    streams = []
    for conn, item in draw(st.lists(st.tuples(st.integers(1, 2), st.sampled_from(["a", "b"])),
                                    min_size=1, max_size=3)):  # fmt: skip
        text = draw(st.sampled_from(["", "see ", "\n"])) + draw(_KEYS) + " end"
        cuts = sorted(draw(st.sets(st.integers(1, len(text) - 1), max_size=8)))
        pieces = [text[x:y] for x, y in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        compact = draw(st.booleans())
        streams.append([("delta", conn, f"msg_{item}", p, compact) for p in pieces])
    streams.append(draw(st.lists(_OTHERS, max_size=8)))
    events: list[tuple] = []
    while any(streams):
        live = [s for s in streams if s]
        events.append(draw(st.sampled_from(live)).pop(0))
    return events


def _items(events: list[tuple]) -> list:
    """Frames (and closes) of two connections from the drawn events."""
    items: list = []
    open_frag: dict[int, bool] = {}
    for n, event in enumerate(events, 1):
        kind, conn = event[0], event[1]
        if kind == "delta":
            _, _, item, text, compact = event
            body = {
                "type": "response.output_text.delta",
                "sequence_number": n,
                "item_id": item,
                "output_index": 0,
                "content_index": 0,
                "delta": text,
                "logprobs": [],
            }
            sep = (",", ":") if compact else (", ", ": ")
            items.append(
                (conn, n, SERVER, TEXT, json.dumps(body, separators=sep).encode(), True, n)
            )
        elif kind == "done":
            body = {"type": "response.output_item.done", "item_id": event[2]}
            items.append((conn, n, SERVER, TEXT, json.dumps(body).encode(), True, n))
        elif kind == "frag":
            opcode = CONT if open_frag.get(conn) else TEXT
            open_frag[conn] = not event[3]
            items.append((conn, n, CLIENT, opcode, event[2].encode(), event[3], n))
        elif kind == "other":
            items.append((conn, n, SERVER, PING if n % 2 else TEXT, b'{"type":"x"}', True, n))
        else:
            items.append(Close(conn=conn, t_ns=n))
    return items


@settings(max_examples=300, deadline=None)
@given(_events(), st.lists(st.integers(1, 8), min_size=1, max_size=20))
def test_a_batch_at_once_writes_what_item_by_item_writes(events: list[tuple], sizes: list[int]):
    """push_many over any batch boundaries (a batch of one stream's deltas taken at once)
    lets out the same items, with the same keys cut out, in the same order on each
    connection, as the general way does one item at a time."""
    items = _items(events)
    redactor = Redactor()
    one = SplitKeys(redactor.find, redactor.shortest)
    one._fast = False  # the general way, a frame at a time
    single = [out for item in items for out in one.push(item)] + one.release()
    many = SplitKeys(redactor.find, redactor.shortest)
    batched, at, k = [], 0, 0
    while at < len(items):
        size = sizes[k % len(sizes)]
        batched += many.push_many(items[at : at + size])
        at, k = at + size, k + 1
    batched += many.release()

    def by_conn(out: list) -> dict:
        got: dict = {}
        for o in out:
            got.setdefault(o[0] if type(o) is tuple else o.conn, []).append(o)
        return got

    assert by_conn(batched) == by_conn(single)
    assert sorted(map(repr, batched)) == sorted(map(repr, single))


_DELTA_TEXT = st.builds(
    lambda text: json.dumps({"type": "response.output_text.delta", "item_id": "m",
                             "output_index": 0, "content_index": 0, "delta": text}).encode(),
    st.sampled_from(["", "a ", "sk-", "proj-ABCDEFGHIJKLMNOPQRSTUVWXYZ", "Q7Q7"]),
)  # fmt: skip
_ODD = st.one_of(
    st.binary(max_size=40),
    _DELTA_TEXT,
    _DELTA_TEXT,
    st.sampled_from(
        [
            b'{"type":"response.output_text.delta","item_id":"m","output_index":0,'
            b'"content_index":0,"delta":"sk-pr',  # cut inside its text
            b'{"type":"response.output_text.delta","item_id":"m","output_index":0,'
            b'"content_index":0,"delta":"oj-ABCDEFGHIJKLMNOPQRSTUV"}',
            b'{"type":"response.output_audio.delta","item_id":"m","output_index":0,'
            b'"content_index":0,"delta":"AAAA"}',
            b'{"type":"x.delta","item_id":"m","output_index":0,"content_index":0,"delta":"\xff"}',
            b'{"type":"response.output_text.done","item_id":"m"}',
        ]
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 2), st.sampled_from([TEXT, 2, CONT]), st.booleans(),
                          _ODD), max_size=30),
       st.lists(st.integers(1, 6), min_size=1, max_size=10))  # fmt: skip
def test_odd_frames_take_the_batch_as_the_general_way_does(frames: list, sizes: list[int]):
    """Binary frames, fragments, cut and malformed events, audio and the batch's separator
    byte: whatever a batch holds, push_many lets out what the general way does."""
    items = [(conn, n, SERVER, op, data, fin, n) for n, (conn, op, fin, data) in enumerate(frames)]
    outs = []
    for fast in (False, True):
        redactor = Redactor()
        split = SplitKeys(redactor.find, redactor.shortest)
        split._fast = fast
        out, at, k = [], 0, 0
        while at < len(items):
            out += split.push_many(items[at : at + sizes[k % len(sizes)]])
            at, k = at + sizes[k % len(sizes)], k + 1
        outs.append(out + split.release())
    assert outs[0] == outs[1]
