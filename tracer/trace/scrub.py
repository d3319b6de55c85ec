"""Redaction of whole records: the one path the recorder and ``tracer import`` share.

``redact_record`` scrubs an open, close or annotation record (URL, headers, subprotocol,
close reason, error, notes); ``redact_records`` scrubs a finished list of records, an
import's: it learns every credential of every record's headers and URL first, so a key
named by a later entry's header is scrubbed from earlier entries too, and joins keys split
across frames as the recorder's writer does (``SplitKeys``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from tracer.trace.records import Annotation, Close, Frame, Open, Record
from tracer.trace.redact import Redactor
from tracer.trace.split import SplitKeys

__all__ = ["learn_record", "redact_record", "redact_records", "redact_tree"]


def learn_record(record: Record, redactor: Redactor) -> None:
    """Learn the credentials an open record names, without keeping the redacted copy."""
    if isinstance(record, Open):
        redact_record(record, redactor)


def redact_record(record: Record, redactor: Redactor) -> Record:
    """A copy of a record that is not a frame, with every secret it holds replaced."""
    if not redactor.enabled:
        return record
    r = redactor
    if isinstance(record, Open):
        return dataclasses.replace(
            record,
            url=r.url(record.url),
            request_headers=r.headers(record.request_headers),
            response_headers=r.headers(record.response_headers),
            subprotocol=r.subprotocols(record.subprotocol) if record.subprotocol else None,
            extra=redact_tree(record.extra, r),
        )
    if isinstance(record, Close):
        return dataclasses.replace(
            record,
            reason=r.text(record.reason),
            error=r.text(record.error) if record.error is not None else None,
        )
    if isinstance(record, Annotation):
        return dataclasses.replace(
            record,
            label=r.text(record.label),
            note=r.text(record.note),
            data=redact_tree(record.data, r),
        )
    return record


def redact_records(records: Iterable[Record], redactor: Redactor) -> list[Record]:
    """Every record scrubbed, in the order given (see the module docstring)."""
    records = list(records)
    if not redactor.enabled:
        return records
    for record in records:
        learn_record(record, redactor)
    split = SplitKeys(redactor.find, redactor.shortest, hold_s=float("inf"))
    order: dict[int, int] = {}  # id of a record handed to the joiner -> its place
    done: list[tuple[int, Any]] = []

    def take(items: list[Any]) -> None:
        for item in items:
            if type(item) is tuple:
                frame = Frame(*item[:6])
                done.append((item[6], frame._replace(payload=redactor.payload(frame.payload))))
            else:
                done.append((order[id(item)], item))

    for i, record in enumerate(records):
        if type(record) is Frame:
            take(split.push((*record, i)))
        else:
            scrubbed = redact_record(record, redactor)
            order[id(scrubbed)] = i
            take(split.push(scrubbed))
    take(split.release())
    done.sort(key=lambda pair: pair[0])
    return [record for _, record in done]


def redact_tree(value: Any, redactor: Redactor) -> Any:
    """A copy of a JSON-like value with every string redacted."""
    if isinstance(value, str):
        return redactor.text(value)
    if isinstance(value, dict):
        return {k: redact_tree(v, redactor) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_tree(v, redactor) for v in value]
    return value
