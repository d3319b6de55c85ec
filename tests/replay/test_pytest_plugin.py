"""The pytest plugin as VCR.py users expect it, driven by pytester with the openai SDK: each
record mode, a mismatch failing the test in its call, --ignore through the marker, an
HTTP-only cassette, and a cassette recorded with `once` used unchanged on the second run.

Ground truth is what the live run's client saw (the test files write it down), never
tracer's own output."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tracer import read_trace
from tracer.trace.records import Open
from tracer.upstream import running_upstream

CLIENT = """
import json, os, pathlib
import openai
import pytest

SEEN = pathlib.Path(os.environ["SEEN_FILE"])

def ask(base_url, text, instructions="Be brief.", stream=False):
    client = openai.OpenAI(api_key="sk-test-not-a-real-key", base_url=base_url, max_retries=0)
    if stream:
        with client.responses.stream(model="m", input=text, instructions=instructions) as s:
            return s.get_final_response().output_text
    return client.responses.create(model="m", input=text, instructions=instructions).output_text

def note(name, value):
    seen = json.loads(SEEN.read_text()) if SEEN.exists() else {}
    seen.setdefault(name, []).append(value)
    SEEN.write_text(json.dumps(seen))
"""


def _run(pytester, upstream_port: int, *args: str):
    return pytester.runpytest(
        f"--tracer-upstream=ws://127.0.0.1:{upstream_port}", "-p", "no:cacheprovider", *args
    )


def _requests(path: Path) -> int:
    return sum(1 for r in read_trace(path) if isinstance(r, Open) and r.transport == "http")


def test_once_records_an_http_cassette_and_replays_it_unchanged(pytester, monkeypatch):
    seen = pytester.path / "seen.json"
    monkeypatch.setenv("SEEN_FILE", str(seen))
    pytester.makepyfile(
        helpers=CLIENT,
        test_http="""
        from helpers import ask, note

        def test_chat(tracer_replay):
            note(tracer_replay.mode, [ask(tracer_replay.base_url, "hi"),
                                      ask(tracer_replay.base_url, "more", stream=True)])
        """,
    )
    with running_upstream() as upstream:
        _run(pytester, upstream.port, "--tracer-record=once").assert_outcomes(passed=1)
        cassette = pytester.path / "cassettes" / "test_chat.trace"
        digest = hashlib.sha256(cassette.read_bytes()).hexdigest()
        assert _requests(cassette) == 2  # HTTP only: non-streamed and streamed
        port = upstream.port
    # The upstream is gone: the second run replays, offline, the same answers.
    _run(pytester, port, "--tracer-record=once").assert_outcomes(passed=1)
    answers = json.loads(seen.read_text())
    assert answers["replay"] == answers["record"] and answers["record"][0][0]
    assert hashlib.sha256(cassette.read_bytes()).hexdigest() == digest


def test_a_mismatch_fails_the_test_in_its_call(pytester, monkeypatch):
    monkeypatch.setenv("SEEN_FILE", str(pytester.path / "seen.json"))
    pytester.makepyfile(
        helpers=CLIENT,
        test_mismatch="""
        import openai, pytest
        from helpers import ask

        @pytest.mark.tracer_cassette("cassettes/chat.trace")
        def test_raised(tracer_replay):
            ask(tracer_replay.base_url, "a question that was never recorded")

        @pytest.mark.tracer_cassette("cassettes/chat.trace")
        def test_swallowed(tracer_replay):
            try:
                ask(tracer_replay.base_url, "another unrecorded question")
            except openai.BadRequestError:
                pass
        """,
    )
    with running_upstream() as upstream:
        pytester.makepyfile(
            test_record="""
            import pytest
            from helpers import ask

            @pytest.mark.tracer_cassette("cassettes/chat.trace")
            def test_record(tracer_replay):
                ask(tracer_replay.base_url, "hi")
            """
        )
        _run(pytester, upstream.port, "--tracer-record=once", "test_record.py").assert_outcomes(
            passed=1
        )
        result = _run(pytester, upstream.port, "test_mismatch.py")
    result.assert_outcomes(failed=2, errors=0)  # failures in the call, not teardown errors
    out = result.stdout.str()
    assert "BadRequestError: Error code: 400 - tracer replay: no recorded request matches" in out
    assert "test_mismatch.py:6: " in out  # the test's own line, the call not matched
    assert 'ask(tracer_replay.base_url, "a question that was never recorded")' in out
    assert "tracer replay mismatch: no recorded request matches" in out  # the swallowed one


def test_ignore_through_the_marker(pytester, monkeypatch):
    monkeypatch.setenv("SEEN_FILE", str(pytester.path / "seen.json"))
    pytester.makepyfile(
        helpers=CLIENT,
        test_ignore="""
        import pytest
        from helpers import ask

        @pytest.mark.tracer_cassette("cassettes/c.trace")
        def test_record(tracer_replay):
            ask(tracer_replay.base_url, "hi", instructions="run 1")

        @pytest.mark.tracer_cassette("cassettes/c.trace", ignore=["$.instructions"])
        def test_ignored(tracer_replay):
            ask(tracer_replay.base_url, "hi", instructions="run 2")

        @pytest.mark.tracer_cassette("cassettes/c.trace")
        def test_not_ignored(tracer_replay):
            ask(tracer_replay.base_url, "hi", instructions="run 2")
        """,
    )
    with running_upstream() as upstream:
        _run(pytester, upstream.port, "--tracer-record=once", "-k", "test_record")
        result = _run(pytester, upstream.port, "-k", "ignored")
    result.assert_outcomes(passed=1, failed=1)
    assert (
        "test_not_ignored FAILED" in result.stdout.str()
        or "FAILED test_ignore.py::test_not" in (result.stdout.str())
    )


def test_new_episodes_appends_what_matched_nothing_and_all_records_anew(pytester, monkeypatch):
    seen = pytester.path / "seen.json"
    monkeypatch.setenv("SEEN_FILE", str(seen))
    pytester.makepyfile(
        helpers=CLIENT,
        test_episodes="""
        import os, pytest
        from helpers import ask, note

        @pytest.mark.tracer_cassette("cassettes/e.trace")
        def test_chat(tracer_replay):
            answers = [ask(tracer_replay.base_url, "first")]
            if os.environ.get("SECOND"):
                answers.append(ask(tracer_replay.base_url, "second", stream=True))
            note(tracer_replay.mode, answers)
        """,
    )
    cassette = pytester.path / "cassettes" / "e.trace"
    with running_upstream() as upstream:
        _run(pytester, upstream.port, "--tracer-record=once").assert_outcomes(passed=1)
        assert _requests(cassette) == 1
        monkeypatch.setenv("SECOND", "1")
        _run(pytester, upstream.port, "--tracer-record=new_episodes").assert_outcomes(passed=1)
        assert _requests(cassette) == 2  # the second request was recorded and appended
        port = upstream.port
    _run(pytester, port).assert_outcomes(passed=1)  # offline: both now replay
    answers = json.loads(seen.read_text())
    assert answers["replay"][0] == answers["new_episodes"][0]
    assert answers["replay"][0][0] == answers["record"][0][0]
    with running_upstream() as upstream:
        monkeypatch.delenv("SECOND")
        _run(pytester, upstream.port, "--tracer-record=all").assert_outcomes(passed=1)
    assert _requests(cassette) == 1  # recorded anew


def test_a_test_that_records_nothing_leaves_no_cassette(pytester):
    pytester.makepyfile(
        test_nothing="""
        def test_nothing(tracer_replay):
            assert tracer_replay.mode == "record"
        """
    )
    with running_upstream() as upstream:
        result = _run(pytester, upstream.port, "--tracer-record=once")
    result.assert_outcomes(passed=1, errors=1)
    assert "nothing was recorded" in result.stdout.str()
    assert not (pytester.path / "cassettes" / "test_nothing.trace").exists()


def test_a_websocket_connection_that_matches_nothing_goes_to_the_fallback(tmp_path: Path):
    """new_episodes over WebSocket: a connection whose first message matches no recorded
    one is handed to the fallback (a recording proxy), which records it."""
    from websockets.sync.client import connect

    from tests.hardening.test_browser_isolation import serving
    from tracer.capture.proxy import RecordingProxy
    from tracer.capture.recorder import Recorder
    from tracer.replay.server import ReplayServer
    from tracer.upstream.server import UpstreamServer

    with serving(UpstreamServer()) as upstream:
        recorder = Recorder(tmp_path / "new.trace")
        proxy = RecordingProxy(f"ws://127.0.0.1:{upstream.port}", recorder)
        with serving(proxy):
            replay = ReplayServer([], speed=0.0, fallback=f"http://127.0.0.1:{proxy.port}")
            with serving(replay), connect(f"ws://127.0.0.1:{replay.port}/v1/responses") as ws:
                ws.send(json.dumps({"type": "response.create", "input": "new"}))
                types = [json.loads(ws.recv(timeout=10))["type"]]
                while types[-1] != "response.completed":
                    types.append(json.loads(ws.recv(timeout=10))["type"])
                ws.send(json.dumps({"type": "response.create", "input": "and more"}))
                while json.loads(ws.recv(timeout=10))["type"] != "response.completed":
                    pass
            assert replay.stats.forwarded == 1 and not replay.stats.mismatches
        recorder.close()
    assert types[0] == "response.created"
    creates = [r for r in read_trace(tmp_path / "new.trace")
               if getattr(r, "payload", b"").startswith(b'{"type": "response.create"')]  # fmt: skip
    assert len(creates) == 2


def test_a_parameter_id_cannot_write_a_cassette_outside_its_folder(pytester, monkeypatch):
    """A pytest id holding ``../`` or ``/`` names one file inside ``cassettes/``."""
    monkeypatch.setenv("SEEN_FILE", str(pytester.path / "seen.json"))
    pytester.makepyfile(
        helpers=CLIENT,
        test_ids="""
        import pytest
        from helpers import ask

        @pytest.mark.parametrize("who", ["../../escaped", "a/b", ".."])
        def test_chat(tracer_replay, who):
            ask(tracer_replay.base_url, "hi")
        """,
    )
    with running_upstream() as upstream:
        _run(pytester, upstream.port, "--tracer-record=once").assert_outcomes(passed=3)
    folder = pytester.path / "cassettes"
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 3 and all(n.endswith(".trace") for n in names), names
    # Unsanitised, "test_chat[../../escaped].trace" would be "escaped].trace" two levels up
    # and "test_chat[a/b].trace" a folder "test_chat[a" holding "b].trace".
    base = pytester.path.parent
    escaped = [p for p in base.rglob("*].trace") if folder not in p.parents and
               p.name in ("escaped].trace", "b].trace")]  # fmt: skip
    assert escaped == []
    assert not (pytester.path / "cassettes" / "test_chat[a").exists()


def test_a_realtime_session_is_recorded_and_replayed_by_the_plugin(pytester, monkeypatch):
    seen = pytester.path / "seen.json"
    monkeypatch.setenv("SEEN_FILE", str(seen))
    pytester.makepyfile(
        helpers=CLIENT,
        test_voice="""
        import openai
        from helpers import note

        def test_voice(tracer_replay):
            client = openai.OpenAI(api_key="sk-test-not-a-real-key",
                                   base_url=tracer_replay.base_url, max_retries=0)
            with client.realtime.connect(model="gpt-realtime") as conn:
                conn.conversation.item.create(item={"type": "message", "role": "user",
                    "content": [{"type": "input_text", "text": "hi"}]})
                conn.response.create(response={"output_modalities": ["text"]})
                for event in conn:
                    if event.type == "response.done":
                        r = event.response
                        note(tracer_replay.mode, [r.id, r.status, r.output[0].content[0].text])
                        break
        """,
    )
    with running_upstream() as upstream:
        _run(pytester, upstream.port, "--tracer-record=once").assert_outcomes(passed=1)
        cassette = pytester.path / "cassettes" / "test_voice.trace"
        opens = [r for r in read_trace(cassette) if isinstance(r, Open)]
        assert [o.url.split("?")[0].rsplit("/", 1)[-1] for o in opens] == ["realtime"]
        port = upstream.port
    _run(pytester, port, "--tracer-record=once").assert_outcomes(passed=1)
    answers = json.loads(seen.read_text())
    assert answers["replay"] == answers["record"] and answers["record"][0][1] == "completed"
