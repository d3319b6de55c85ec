"""The Realtime API's protocol model: a connection's frames -> turn events (no I/O).

A Realtime turn is one response: asked for by the client (``response.create``) or started
by the server after its voice activity detection heard the speaker stop
(``input_audio_buffer.speech_stopped``, ``committed``, then ``response.created`` with no
create): ``trigger`` ``client`` or ``vad``. Its input is what the conversation gained since
the turn before: the client's ``conversation.item.create`` items and the committed audio.
The server keeps the connection's conversation, so every turn refers to what came before
(``Turn.continues``); a client that resumes on a new connection re-creates it, and that is
resent context (``cache_loss``), as for Responses.

What is learned of a response after its ``response.done`` (the client truncating the audio
it played, the input transcript completing) arrives before the next turn starts; a turn is
therefore reported (``TurnEnded``) when the next turn starts or the connection ends, with
the times it had. GA event names and the beta names where they differ are both read.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from tracer.protocols.base import Book, Protocol, Reader, Tokens, json_type_is, token_count
from tracer.protocols.events import Event, TurnEnded, TurnStarted
from tracer.protocols.turns import Connection, Turn, VoiceTurn, dict_items, loads
from tracer.realtime.audio import SessionConfig, decoded_size
from tracer.trace.records import Close, Frame

__all__ = ["REALTIME", "RealtimeProtocol", "RealtimeReader"]

_AUDIO_DELTAS = frozenset(["response.output_audio.delta", "response.audio.delta"])
_TEXT_DELTAS = frozenset(
    [
        "response.output_text.delta",
        "response.text.delta",
        "response.output_audio_transcript.delta",
        "response.audio_transcript.delta",
    ]
)
_TOKENS = _AUDIO_DELTAS | _TEXT_DELTAS | {"response.function_call_arguments.delta"}
_ITEM_ADDED = frozenset(["conversation.item.added", "conversation.item.created"])
_TRANSCRIBED = frozenset(
    [
        "conversation.item.input_audio_transcription.completed",
        "conversation.item.input_audio_transcription.failed",
    ]
)
_SESSION = frozenset(["session.created", "session.updated"])
_CLIENT_KINDS = frozenset(
    ["session.update", "input_audio_buffer.append", "conversation.item.create"]
)
MAX_ITEMS_TRACKED = 10_000
"""Output items whose audio size is kept for a later truncation, per connection."""


class RealtimeProtocol(Protocol):
    """The Realtime API (OpenAI, Azure OpenAI, xAI): ``/realtime`` WebSockets."""

    name = "realtime"

    def claims_open(self, path: str, transport: str, subprotocol: str | None) -> bool:
        if transport != "websocket":
            return False
        return path.rstrip("/").endswith("/realtime") or (subprotocol or "").startswith("realtime")

    def claims_message(self, client: bool, kind: str) -> bool:
        return kind in _CLIENT_KINDS if client else kind in _SESSION

    def reader(self, book: Book, connection: Connection) -> RealtimeReader:
        return RealtimeReader(book, connection)

    def starts_turn(self, client: bool, payload: bytes, http: bool) -> bool:
        # A turn starts when the server starts a response (asked for or not).
        return (
            not client
            and b'"response.created"' in payload[:256]
            and json_type_is(payload, "response.created")
        )

    def tokens(self, usage: Any) -> Tokens:
        return Tokens(
            input=token_count(usage, "input_tokens"),
            cached=token_count(usage, "input_token_details", "cached_tokens"),
            output=token_count(usage, "output_tokens"),
            input_audio=token_count(usage, "input_token_details", "audio_tokens"),
            output_audio=token_count(usage, "output_token_details", "audio_tokens"),
        )


REALTIME = RealtimeProtocol()


class RealtimeReader(Reader):
    """One Realtime connection's frames -> turn events."""

    def __init__(self, book: Book, connection: Connection) -> None:
        self.seg = book
        self.c = connection
        self.session = SessionConfig()
        self.items: list[Any] = []  # what the conversation gained since the last turn
        self.appended = 0  # input audio bytes appended in all (the buffer's timeline)
        self.commit_at = 0  # where in it the last commit ended
        self.stop_at: int | None = None  # where the detection heard the speech end
        self.committed = 0  # input audio bytes committed since the last turn
        self.t_speech_stopped: int | None = None
        self.audio_item: str | None = None
        self.asked: deque[Turn] = deque()  # client creates the server has not started yet
        self.running: dict[str, Turn] = {}  # response id -> its turn
        self.current: Turn | None = None  # the latest turn started (events without an id)
        self.done: list[Turn] = []  # ended, reported when the next turn starts
        self.by_item: dict[str, Turn] = {}  # output item id -> its turn (truncation)
        self.item_audio: dict[str, int] = {}  # output item id -> its audio bytes
        self.transcribed: dict[str, int] = {}  # audio item id -> transcript done, no turn yet

    # -- the Reader interface ---------------------------------------------------------------

    def client(self, frame: Frame) -> list[Event] | None:
        body = loads(frame.payload)
        kind = body.get("type") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(kind, str):
            self.c.message_types["client:<non-json>"] += 1
            return None
        self.c.message_types[f"client:{kind}"] += 1
        if kind == "input_audio_buffer.append":
            audio = body.get("audio")
            self.appended += decoded_size(audio) if isinstance(audio, str) else 0
        elif kind == "conversation.item.create":
            item = body.get("item")
            if isinstance(item, dict):
                self.items.append(item)
        elif kind == "response.create":
            return self._create(body, frame)
        elif kind == "input_audio_buffer.clear":
            self.commit_at = self.appended
        elif kind == "session.update":
            session = body.get("session")
            if isinstance(session, dict):
                self.session.update(session)
        elif kind == "response.cancel":
            rid = body.get("response_id")  # without one: the response in progress
            running = list(self.running.values())
            turn = (
                self.running.get(rid)
                if isinstance(rid, str)
                else (running[-1] if running else None)
            )
            if turn is not None and turn.voice is not None and turn.t_end is None:
                turn.voice.interrupted = True
        elif kind == "conversation.item.truncate":
            self._truncate(body)
        return None

    def server(self, frame: Frame) -> list[Event] | None:
        event = loads(frame.payload)
        kind = event.get("type") if isinstance(event, dict) else None
        if not isinstance(event, dict) or not isinstance(kind, str):
            self.c.message_types["server:<non-json>"] += 1
            return None
        self.c.message_types[f"server:{kind}"] += 1
        if kind.startswith("response.") and kind != "response.created":
            return self._response_event(frame, event, kind)
        if kind == "response.created":
            return self._created(frame, event)
        if kind == "input_audio_buffer.speech_stopped":
            self.t_speech_stopped = frame.t_ns
            self.audio_item = _str(event.get("item_id")) or self.audio_item
            end_ms = event.get("audio_end_ms")  # counts all audio of the session's buffer
            if isinstance(end_ms, int) and not isinstance(end_ms, bool) and end_ms >= 0:
                self.stop_at = min(self.appended, end_ms * self.session.input_rate // 1000)
        elif kind == "input_audio_buffer.committed":
            # The detection's commit holds the audio up to the speech's end; the client's
            # own commit, everything it appended (the server reads the client's order).
            at = self.stop_at if self.stop_at is not None else self.appended
            self.committed += max(0, at - self.commit_at)
            self.commit_at, self.stop_at = max(self.commit_at, at), None
            item_id = _str(event.get("item_id"))
            self.audio_item = item_id or self.audio_item
            self.items.append(  # the audio is not in the trace's JSON: its item names it
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_audio"}],
                    "audio_item": item_id,
                }
            )
        elif kind == "input_audio_buffer.speech_started":
            turn = self.current
            if turn is not None and turn.voice is not None and turn.t_end is None:
                turn.voice.interrupted = True  # the speaker talked over the answer
        elif kind in _TRANSCRIBED:
            self._transcribed(frame, event)
        elif kind in _SESSION:
            session = event.get("session")
            if isinstance(session, dict):
                self.session.update(session)
        elif kind == "error":
            return self._error(frame, event)
        elif kind not in _ITEM_ADDED and not kind.startswith(
            ("conversation.", "input_audio_buffer.", "rate_limits.")
        ):
            self.c.orphan_events += 1
        return None

    def pending(self) -> list[Turn]:
        turns = [*self.done, *self.asked, *self.running.values()]
        return sorted({id(t): t for t in turns}.values(), key=lambda t: t.index)

    def finish(self) -> list[Turn]:
        pending = [self._settle(t) for t in self.pending()]
        self.done, self.asked, self.running, self.current = [], deque(), {}, None
        return pending

    def close(self, record: Close, failure: str | None) -> list[Event]:
        pending = self.finish()
        for turn in pending:
            if failure is not None and turn.t_end is None:  # the close cut it short
                turn.status, turn.error_code = "error", failure
                turn.error_message = record.error or record.reason or None
                turn.t_end = record.t_ns
        return [TurnEnded(self._settle(t)) for t in pending]

    # -- turns ------------------------------------------------------------------------------

    def _flush(self) -> list[Event]:
        """Report the turns that ended: the next one is starting."""
        done, self.done = self.done, []
        return [TurnEnded(self._settle(t)) for t in done]

    def _settle(self, turn: Turn) -> Turn:
        """What the client did not play of a truncated item is known once it is reported:
        the audio streamed for the item in all, less what the client said it played."""
        voice = turn.voice
        if voice is not None:
            for item, played in voice.played.items():
                voice.cut_bytes += max(0, self.item_audio.get(item, 0) - played)
            voice.interrupted = voice.interrupted or voice.cut_bytes > 0
            voice.played = {}
        return turn

    def _turn(self, frame: Frame, trigger: str, t_start: int, request: dict[str, Any]) -> Turn:
        voice = VoiceTurn(
            input_audio_bytes=self.committed,
            input_rate=self.session.input_rate,
            output_rate=self.session.output_rate,
            t_speech_stopped=self.t_speech_stopped,
            silence_ms=self.session.silence_ms,
            audio_item=self.audio_item,
            t_transcribed=self.transcribed.pop(self.audio_item or "", None),
        )
        response = request.pop("response", None)
        options = response if isinstance(response, dict) else {}
        own = options.get("input")
        request["input"] = (
            [*self.items, *dict_items(own)]
            if options.get("conversation") != "none"
            else dict_items(own)
        )
        modalities = options.get("output_modalities") or options.get("modalities")
        voice.text = isinstance(modalities, list) and "audio" not in modalities
        turn = Turn(
            index=self.seg.next_index(self.c),
            conn=self.c.conn,
            stream_id=None,
            t_create=t_start,
            request=request,
            request_bytes=len(frame.payload) if trigger == "client" else 0,
            protocol="realtime",
            trigger=trigger,
            continues=options.get("conversation") != "none",
            voice=voice,
        )
        turn.model = self.session.model
        if options.get("conversation") != "none":
            self.items = []
        self.committed, self.t_speech_stopped, self.audio_item = 0, None, None
        return turn

    def _create(self, body: dict[str, Any], frame: Frame) -> list[Event]:
        events = self._flush()
        request = {k: v for k, v in body.items() if k not in ("type", "event_id")}
        turn = self._turn(frame, "client", frame.t_ns, request)
        self.seg.keep(turn, frame)
        self.asked.append(turn)
        self.current = turn
        return [*events, TurnStarted(turn)]

    def _created(self, frame: Frame, event: dict[str, Any]) -> list[Event]:
        response = event.get("response")
        rid = _str(response.get("id")) if isinstance(response, dict) else None
        events: list[Event] = []
        if self.asked:
            turn = self.asked.popleft()
        else:  # a response the server started on its own: its voice detection
            events = self._flush()
            start = self.t_speech_stopped if self.t_speech_stopped is not None else frame.t_ns
            trigger = "vad" if self.t_speech_stopped is not None or self.committed else "server"
            turn = self._turn(frame, trigger, start, {})
            events.append(TurnStarted(turn))
        turn.response_id = rid
        turn.t_first_event = frame.t_ns
        self._attribute(turn, frame, "response.created")
        if rid is not None:
            self.running[rid] = turn
        self.current = turn
        return events

    def _owner(self, event: dict[str, Any]) -> Turn | None:
        rid = event.get("response_id")
        if isinstance(rid, str) and rid in self.running:
            return self.running[rid]
        response = event.get("response")
        if isinstance(response, dict) and response.get("id") in self.running:
            return self.running[response["id"]]
        turn = self.current
        return turn if turn is not None and turn.t_end is None else None

    def _response_event(self, frame: Frame, event: dict[str, Any], kind: str) -> list[Event] | None:
        turn = self._owner(event)
        if turn is None or turn.voice is None:
            self.c.orphan_events += 1
            return None
        voice = turn.voice
        self._attribute(turn, frame, kind)
        if kind in _TOKENS and turn.t_first_token is None:
            turn.t_first_token = frame.t_ns
        delta = event.get("delta")
        if kind in _AUDIO_DELTAS:
            size = decoded_size(delta) if isinstance(delta, str) else 0
            voice.output_audio_bytes += size
            if voice.t_first_audio is None:
                voice.t_first_audio = frame.t_ns
            item = _str(event.get("item_id"))
            if item is not None and (
                item in self.item_audio or len(self.item_audio) < MAX_ITEMS_TRACKED
            ):
                self.item_audio[item] = self.item_audio.get(item, 0) + size
                self.by_item[item] = turn
        elif kind in _TEXT_DELTAS and self.seg.collect_text and isinstance(delta, str):
            turn.add_text(delta, self.seg.text_limit)
        elif kind == "response.output_item.done":
            item = event.get("item")
            if isinstance(item, dict):
                turn.done_items.append(item)
        elif kind == "response.done":
            self._done(frame, turn, event.get("response"))
        return None

    def _done(self, frame: Frame, turn: Turn, response: Any) -> None:
        turn.t_end = frame.t_ns
        body = response if isinstance(response, dict) else {}
        status = body.get("status")
        turn.status = status if isinstance(status, str) and status else "completed"
        usage = body.get("usage")
        turn.usage = usage if isinstance(usage, dict) else None
        turn.output = dict_items(body.get("output")) or turn.done_items
        turn.done_items = []
        details = body.get("status_details")
        if isinstance(details, dict):
            error = details.get("error")
            reason = details.get("reason")
            if isinstance(error, dict):
                turn.error_code = _str(error.get("code")) or _str(error.get("type"))
                turn.error_message = _str(error.get("message"))
            elif isinstance(reason, str):
                turn.error_code = reason  # turn_detected, client_cancelled, max_output_tokens
        if turn.status == "cancelled" and turn.voice is not None:
            turn.voice.interrupted = True
        if turn.response_id is not None:
            self.running.pop(turn.response_id, None)
        self.done.append(turn)

    def _error(self, frame: Frame, event: dict[str, Any]) -> list[Event] | None:
        """An error event fails the create the server has not started yet, if any; other
        errors (a bad item, a bad update) fail no turn and are counted on the connection."""
        if not self.asked:
            self.c.orphan_events += 1
            return None
        turn = self.asked.popleft()
        nested = event.get("error")
        error: dict[str, Any] = nested if isinstance(nested, dict) else event
        turn.status = "error"
        turn.error_code = _str(error.get("code")) or _str(error.get("type"))
        turn.error_message = _str(error.get("message"))
        turn.t_end = frame.t_ns
        self._attribute(turn, frame, "error")
        return [*self._flush(), TurnEnded(turn)]

    def _attribute(self, turn: Turn, frame: Frame, kind: str) -> None:
        turn.events += 1
        turn.event_types[kind] += 1
        self.seg.keep(turn, frame)

    # -- what the session and the client said -------------------------------------------------

    def _truncate(self, body: dict[str, Any]) -> None:
        """The client stopped playing an item's audio at ``audio_end_ms``: the rest was cut."""
        item = body.get("item_id")
        end_ms = body.get("audio_end_ms")
        turn = self.by_item.get(item) if isinstance(item, str) else None
        if turn is None or turn.voice is None or not isinstance(end_ms, int):
            return
        assert isinstance(item, str)
        turn.voice.played[item] = max(0, end_ms) * turn.voice.output_rate // 1000
        turn.voice.interrupted = True

    def _transcribed(self, frame: Frame, event: dict[str, Any]) -> None:
        item = _str(event.get("item_id"))
        for turn in (*self.done, *self.running.values(), *self.asked):
            if turn.voice is not None and item is not None and turn.voice.audio_item == item:
                turn.voice.t_transcribed = frame.t_ns
                return
        if item is not None and len(self.transcribed) < MAX_ITEMS_TRACKED:
            self.transcribed[item] = frame.t_ns  # before the turn it starts


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
