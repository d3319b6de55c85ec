"""The context model: which input items of a turn were new, resent or referenced (no I/O).

Context is compared within the agent's whole **conversation**, not within a connection: the
same agent may chain over one socket, reconnect after a lost cache, or talk HTTP, where
every request is a connection of its own. A turn joins a conversation, in this order:

1. the conversation of the response its ``previous_response_id`` names, when tracer saw it;
2. on WebSocket, the conversation its connection and lane already carry, unless the turn
   shares no item with it (a fresh conversation on the same socket); a turn of a protocol
   whose server holds the connection's conversation (Realtime: ``Turn.continues``) always
   joins it, and refers to all of it;
   A connection that resumes a session by its handle (Gemini Live's ``sessionResumption``)
   continues the conversation of the session that issued the handle.
3. the conversation that *received* the most of the turn's input items (an agent resending
   its history after a reconnect, or over HTTP, resends what the model answered it); an
   item that several conversations received (the same answer to independent agents) does
   not count, so agents that merely start or answer alike stay apart;
4. otherwise, a new conversation.

Every input item is then ``resent`` when the conversation already sent or received it
(compared by ``identity``, which survives re-serialisation), else ``new``; copies count:
the k-th identical item of a create is resent only when the conversation held k copies.
A turn's resent items share one reason: ``cache_loss`` right after a lost cache,
``transport`` for an HTTP request without ``previous_response_id``, ``chain`` otherwise
(waste). ``referenced`` is what ``previous_response_id`` stood for.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tracer.analysis.items import ItemHashes, item_hash, json_bytes
from tracer.analysis.model import CacheLoss
from tracer.protocols.turns import Turn

__all__ = ["Account", "ContextModel", "Conversation"]

MAX_HANDLES = 100_000
"""Resumption handles remembered (a hostile trace could send a million)."""


@dataclass(slots=True)
class Conversation:
    """One agent's conversation: every item it sent or received, and where it stands."""

    id: int
    # Copies of each item (by hash) the conversation sent or received: a resend matches
    # copies, so an agent's two identical messages are both resent when it resends both.
    seen: Counter[int] = field(default_factory=Counter)
    ws_conns: set[int] = field(default_factory=set)  # WebSocket connections it ran on
    last_end: int | None = None  # ns, end of its latest turn (for client time)
    loss: CacheLoss | None = None  # a cache loss that awaits its recovery turn
    last_fields: dict[str, bytes] = field(default_factory=dict)  # the last create's fields
    compacted: Counter[int] = field(default_factory=Counter)  # what its last compaction gave
    # The context its latest completed turn stood for (item hashes: input, then output) and
    # that turn's response id; None when unknown (a chain tracer did not see start).
    context: list[int] | None = None
    last_response: str | None = None


@dataclass(slots=True)
class Account:
    """What the context model decided for one turn when its create was sent."""

    conversation: Conversation
    hashes: list[int]  # per input item
    sizes: list[int]
    resent: list[bool]
    reason: str | None  # for the resent items
    chain: tuple[int, int] | None  # what previous_response_id stood for: items, bytes
    reconnect: bool  # the turn moved the conversation to a new socket with no live chain
    compacted: list[bool] = field(default_factory=list)  # per item: a compaction's output
    # Without previous_response_id: the first input item that differs from the context of
    # the conversation's latest turn ("input[3]"), where a cached prefix ends.
    prefix_change: str | None = None
    # Per input item as the create sent it: the hash of its JSON (what memoises its
    # identity, here and in the diff's contents).
    keys: list[int] = field(default_factory=list)

    @property
    def compacted_items(self) -> int:
        return sum(self.compacted)

    @property
    def compacted_bytes(self) -> int:
        return sum(s for s, c in zip(self.sizes, self.compacted, strict=True) if c)

    @property
    def input_bytes(self) -> int:
        return sum(self.sizes)

    @property
    def resent_items(self) -> int:
        return sum(self.resent)

    @property
    def resent_bytes(self) -> int:
        return sum(s for s, r in zip(self.sizes, self.resent, strict=True) if r)


@dataclass(slots=True)
class _Response:
    conversation: Conversation
    conn: int
    items: int  # the whole context the response stands for
    bytes: int


class ContextModel:
    """Assigns turns to conversations and classifies their input items."""

    def __init__(self) -> None:
        self.conversations: list[Conversation] = []
        self._responses: dict[str, _Response] = {}
        self._by_lane: dict[tuple[int, str | None], Conversation] = {}
        # Output item hash -> the conversation that received it; None when several did
        # (identical answers to independent agents): such an item says nothing of who sent it.
        self._received: dict[int, Conversation | None] = {}
        self._ended: dict[str, int] = {}  # response id -> when its turn ended
        self._hashes = ItemHashes()
        self._held: dict[int, tuple[int, int]] = {}  # conn -> items, bytes its server holds
        # A resumption handle -> the conversation and connection whose session it resumes.
        self._handles: dict[str, tuple[Conversation, int]] = {}

    def start(self, turn: Turn) -> Account:
        """Classify a create's input items, in the order creates were sent."""
        items = turn.input_items
        raws = [json_bytes(i) for i in items]
        keys = [hash(raw) for raw in raws]
        hashes = [self._hashes.keyed(i, k) for i, k in zip(items, keys, strict=True)]
        sizes = [len(raw) for raw in raws]
        prev = self._responses.get(turn.previous_response_id or "")
        resumed = self._handles.get(turn.resumes or "")
        if resumed is not None and (turn.conn, turn.stream_id) not in self._by_lane:
            # A session resumed on a new connection: the same conversation, held as it was.
            self._by_lane[(turn.conn, turn.stream_id)] = resumed[0]
            self._held[turn.conn] = self._held.get(resumed[1], (0, 0))
            resumed[0].ws_conns.add(turn.conn)
        conv = self._join(turn, hashes, prev)
        websocket = turn.transport == "websocket"
        reconnect = websocket and turn.conn not in conv.ws_conns and bool(conv.ws_conns)
        reconnect = reconnect and (prev is None or prev.conn != turn.conn)
        resent: list[bool] = []
        here: dict[int, int]
        compacted: list[bool] = []
        if not conv.compacted and len(set(hashes)) == len(hashes):
            # The common case, no item twice and no compaction to come back: one copy of
            # each, resent when the conversation holds one already.
            seen = conv.seen
            resent = [seen.get(h, 0) >= 1 for h in hashes]
            compacted = [False] * len(hashes)
            here = dict.fromkeys(hashes, 1)
        else:
            here = Counter()
            from_compaction: Counter[int] = Counter()
            for h in hashes:
                # What the conversation's last compaction returned comes back as the new
                # chain's start: compacted, neither new nor resent.
                if from_compaction[h] < conv.compacted[h]:
                    from_compaction[h] += 1
                    compacted.append(True)
                    resent.append(False)
                    continue
                compacted.append(False)
                here[h] = here.get(h, 0) + 1
                resent.append(here[h] <= conv.seen[h])
        reason = None
        if any(resent):
            if conv.loss is not None or (reconnect and turn.previous_response_id is None):
                reason = "cache_loss"
            elif turn.transport == "http" and turn.previous_response_id is None:
                reason = "transport"
            else:
                reason = "chain"
        for h, n in here.items():  # what the conversation now holds copies of
            if n > conv.seen[h]:
                conv.seen[h] = n
        if websocket:
            conv.ws_conns.add(turn.conn)
            self._by_lane[(turn.conn, turn.stream_id)] = conv
        chain = (prev.items, prev.bytes) if prev is not None else None
        if turn.continues:
            chain = self._held.get(turn.conn)
        account = Account(conv, hashes, sizes, resent, reason, chain, reconnect, compacted)
        account.keys = keys
        if turn.previous_response_id is None and conv.context:
            account.prefix_change = _first_difference(conv.context, hashes)
        return account

    def inject(self, account: Account, items: list[Any]) -> None:
        """Items the server accepted into a running response: input of that turn, new or
        resent as any other (copies counted)."""
        conv = account.conversation
        here = Counter(h for h, c in zip(account.hashes, account.compacted, strict=False)
                       if not c)  # fmt: skip
        for item in items:
            raw = json_bytes(item)
            h = self._hashes(item, raw)
            here[h] += 1
            account.hashes.append(h)
            account.sizes.append(len(raw))
            account.resent.append(here[h] <= conv.seen[h])
            account.compacted.append(False)
            if here[h] > conv.seen[h]:
                conv.seen[h] = here[h]

    def _join(self, turn: Turn, hashes: list[int], prev: _Response | None) -> Conversation:
        if prev is not None:
            return prev.conversation
        if turn.continues and (turn.conn, turn.stream_id) in self._by_lane:
            return self._by_lane[(turn.conn, turn.stream_id)]
        if turn.transport == "websocket":
            conv = self._by_lane.get((turn.conn, turn.stream_id))
            if conv is not None and (not hashes or any(h in conv.seen for h in hashes)):
                return conv
        votes: dict[int, int] = {}
        best: Conversation | None = None
        for h in hashes:
            owner = self._received.get(h)
            if owner is None:
                continue
            votes[owner.id] = votes.get(owner.id, 0) + 1
            if best is None or (votes[owner.id], owner.last_end or 0) > (
                votes[best.id],
                best.last_end or 0,
            ):
                best = owner
        if best is not None:
            return best
        conv = Conversation(id=len(self.conversations))
        self.conversations.append(conv)
        return conv

    def end(
        self, turn: Turn, account: Account, outputs: list[dict[str, Any]], copies: list[Any]
    ) -> int:
        """Take in an ended turn's output items (and other copies of them the server sent);
        returns the number of output items."""
        conv = account.conversation
        out_hashes = [item_hash(o) for o in outputs]
        out_bytes = sum(len(json_bytes(o)) for o in outputs)
        received = self._received
        for h in out_hashes + [item_hash(c) for c in copies]:
            conv.seen[h] += 1
            owner = received.get(h, conv)
            received[h] = conv if owner is conv else None
        if turn.kind == "compaction" and turn.status == "completed":
            conv.compacted = Counter(out_hashes)
        elif any(o.get("type") == "compaction" for o in outputs):  # context_management
            conv.compacted = Counter(
                h for h, o in zip(out_hashes, outputs, strict=True) if o.get("type") == "compaction"
            )
        if turn.status == "completed" and not turn.continues:
            if turn.previous_response_id is None:
                conv.context = account.hashes + out_hashes
            elif turn.previous_response_id == conv.last_response and conv.context is not None:
                conv.context.extend(account.hashes)  # in place: a long chain stays linear
                conv.context.extend(out_hashes)
            else:
                conv.context = None
            conv.last_response = turn.response_id
        for handle in turn.handles:
            if len(self._handles) < MAX_HANDLES:
                self._handles[handle] = (conv, turn.conn)
        if turn.continues:  # the server keeps what it was sent and what it answered
            held_items, held_bytes = self._held.get(turn.conn, (0, 0))
            self._held[turn.conn] = (
                held_items + len(account.hashes) + len(outputs),
                held_bytes + account.input_bytes + out_bytes,
            )
        elif turn.response_id and turn.status == "completed":
            chain_items, chain_bytes = account.chain or (0, 0)
            self._responses[turn.response_id] = _Response(
                conv,
                turn.conn,
                chain_items + len(account.hashes) + len(outputs),
                chain_bytes + account.input_bytes + out_bytes,
            )
        if turn.t_end is not None:
            conv.last_end = max(conv.last_end or 0, turn.t_end)
            if turn.response_id:
                self._ended[turn.response_id] = turn.t_end
        return len(outputs)

    def client_since(self, turn: Turn, account: Account) -> int | None:
        """When the turn this create continues ended: the response it names, else the
        conversation's latest turn (across reconnects and HTTP requests)."""
        before = self._ended.get(turn.previous_response_id or "")
        if before is None:
            before = account.conversation.last_end
        return before if before is not None and before <= turn.t_create else None

    def loss_kind(self, turn: Turn) -> str:
        """Why the server did not hold the response a create named."""
        prev = self._responses.get(turn.previous_response_id or "")
        if prev is not None:
            return "evicted" if prev.conn == turn.conn else "reconnect"
        return "reconnect" if turn.previous_response_id in self._ended else "not_found"


def _first_difference(before: list[int], now: list[int]) -> str | None:
    """Where ``now`` stops repeating ``before`` ("input[i]"); None when it repeats all of it."""
    for i, (a, b) in enumerate(zip(before, now, strict=False)):
        if a != b:
            return f"input[{i}]"
    return f"input[{len(now)}]" if len(now) < len(before) else None
