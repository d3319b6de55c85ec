"""The recorder never blocks its producers, bounds its memory, and says what it dropped."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from tracer.capture.recorder import Recorder
from tracer.trace import Annotation, Direction, Frame, Opcode, open_trace


def test_a_stalled_disk_drops_frames_instead_of_blocking(tmp_path: Path):
    fifo = tmp_path / "stalled.trace"
    os.mkfifo(fifo)
    out = tmp_path / "copy.trace"
    release = threading.Event()
    released_by_test: list[bool] = []

    def slow_disk():
        with open(fifo, "rb") as src, open(out, "wb") as dst:
            # The "disk" accepts nothing until the test releases it after the producer's
            # loop; a producer that waited on the writer would only go on at the timeout.
            released_by_test.append(release.wait(60))
            while chunk := src.read(1 << 16):
                dst.write(chunk)

    reader = threading.Thread(target=slow_disk)
    reader.start()
    recorder = Recorder(fifo, max_queue_bytes=1 << 20)
    payload = b"x" * (64 * 1024)
    sent = 400  # 25 MiB offered against a 1 MiB backlog
    for i in range(sent):
        recorder.frame(1, Direction.SERVER, Opcode.BINARY, payload[:-4] + i.to_bytes(4, "big"))
    dropped = recorder.stats.dropped_frames
    release.set()
    recorder.close()
    reader.join(30)
    assert released_by_test == [True]  # the producer never waited on the stalled writer
    assert dropped > 0
    assert recorder.stats.frames + dropped == sent
    with open_trace(out) as r:
        records = list(r)
        footer = r.footer
    frames = [x for x in records if type(x) is Frame]
    assert len(frames) == recorder.stats.frames  # every frame it accepted was written
    numbers = [int.from_bytes(f.payload[-4:], "big") for f in frames]
    assert numbers == sorted(numbers)  # in order
    assert footer is not None and footer.dropped_frames == dropped
    notes = [x for x in records if type(x) is Annotation]
    assert notes and notes[-1].label == "tracer.dropped_frames"


def test_frames_from_several_threads_are_all_counted(tmp_path: Path):
    recorder = Recorder(tmp_path / "t.trace")
    per_thread = 5000

    def produce(conn: int) -> None:
        for i in range(per_thread):
            recorder.frame(conn, Direction.CLIENT, Opcode.TEXT, b"%d" % i)

    threads = [threading.Thread(target=produce, args=(c,)) for c in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recorder.close()
    with open_trace(tmp_path / "t.trace") as r:
        frames = [x for x in r if type(x) is Frame]
    assert recorder.stats.frames == len(frames) == 4 * per_thread
    for conn in range(1, 5):
        mine = [int(f.payload) for f in frames if f.conn == conn]
        assert mine == list(range(per_thread))
