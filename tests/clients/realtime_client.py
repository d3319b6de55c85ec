"""A voice agent on the openai SDK's ``client.realtime.connect()``, for ``test_realtime``.

``session`` mode: a text turn, a function-call round, two spoken turns the server's voice
detection answers, a turn the speaker talks over (the client truncates what it played), a
create the client cancels, and a create refused while another runs. ``resume`` mode: one
spoken turn, then the connection drops (the upstream closes with 1011) and the client
re-creates its history on a new connection and asks again. Prints the SDK's own account.
"""

import base64
import contextlib
import hashlib
import json
import sys
import time
from typing import Any

import openai

from tracer.upstream.realtime import tone

CHUNK_MS = 20
SPEECH_MS = 400  # loud audio, then enough silence for the server's detection
SILENCE_MS = 400


def chunks(pcm: bytes) -> list[str]:
    size = 2 * 24 * CHUNK_MS  # bytes of 20 ms of 24 kHz PCM16
    return [base64.b64encode(pcm[i : i + size]).decode() for i in range(0, len(pcm), size)]


class Agent:
    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.digest = hashlib.sha256()  # every event received, in order
        self.account: dict[str, Any] = {
            "responses": [],
            "appended_bytes": 0,
            "errors": [],
            "truncated": [],
        }
        self.history: list[dict[str, Any]] = []

    def until(self, *kinds: str) -> Any:
        for event in self.conn:
            self.digest.update(event.model_dump_json().encode())
            self.account["events"] = self.account.get("events", 0) + 1
            self.account["events_sha256"] = self.digest.hexdigest()
            if event.type == "response.done":
                r = event.response
                self.account["responses"].append(
                    {
                        "id": r.id,
                        "status": r.status,
                        "usage": r.usage.model_dump(exclude_none=True) if r.usage else None,
                    }
                )
                for item in r.output or []:
                    if r.status == "completed":
                        self.history.append(
                            item.model_dump(exclude_none=True, exclude={"id", "object", "status"})
                        )
            if event.type == "error":
                self.account["errors"].append(event.error.code)
            if event.type in kinds:
                return event
        raise SystemExit("the connection ended early")

    def say(self, text: str, **response: Any) -> Any:
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        }
        self.history.append(item)
        self.conn.conversation.item.create(item=item)
        self.conn.response.create(**({"response": response} if response else {}))
        return self.until("response.done")

    def speak(self, speech_ms: int = SPEECH_MS, silence_ms: int = SILENCE_MS) -> None:
        """Send speech then silence as a microphone does: a 20 ms chunk every 20 ms."""
        pcm = tone(speech_ms) + tone(silence_ms, amplitude=0)
        for audio in chunks(pcm):
            self.account["appended_bytes"] += len(base64.b64decode(audio))
            self.conn.input_audio_buffer.append(audio=audio)
            time.sleep(CHUNK_MS / 1000)


def session(client: openai.OpenAI) -> dict[str, Any]:
    with client.realtime.connect(model="gpt-realtime") as conn:
        agent = Agent(conn)
        agent.until("session.created")
        conn.session.update(
            session={
                "type": "realtime",
                "audio": {
                    "input": {
                        "transcription": {"model": "whisper-1"},
                        "turn_detection": {
                            "type": "server_vad",
                            "silence_duration_ms": 300,
                            "create_response": True,
                            "interrupt_response": True,
                        },
                    }
                },
            }
        )
        agent.until("session.updated")
        agent.say("Hi, in text please.", output_modalities=["text"])
        done = agent.say("What is the weather in Paris?")
        call = done.response.output[0]
        output = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
        agent.history.append(output)
        conn.conversation.item.create(item=output)
        conn.response.create()
        agent.until("response.done")
        for _ in range(2):  # spoken turns, answered on the server's own
            agent.speak()
            agent.until("response.done")
        # Talked over: speech again once the answer's audio starts; the client truncates it.
        agent.speak(silence_ms=0)
        agent.speak(speech_ms=0, silence_ms=320)
        delta = agent.until("response.output_audio.delta")
        conn.conversation.item.truncate(item_id=delta.item_id, content_index=0, audio_end_ms=20)
        agent.account["truncated"].append({"item_id": delta.item_id, "audio_end_ms": 20})
        agent.speak()  # the speaker talks over the answer: the server cancels it
        agent.until("response.done")  # the cancelled one
        agent.until("response.done")  # the answer to what was said over it
        # A create the client cancels, and one refused while another runs.
        conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Wait."}],
            }
        )
        conn.response.create()
        agent.until("response.created")
        conn.response.create()  # refused: a response is active
        conn.response.cancel()
        agent.until("response.done")
        agent.account["session"] = "done"
        return agent.account


def resume(client: openai.OpenAI) -> dict[str, Any]:
    account: dict[str, Any] = {"connections": []}
    with client.realtime.connect(model="gpt-realtime") as conn:
        agent = Agent(conn)
        agent.until("session.created")
        agent.say("Remember the number 7.", output_modalities=["text"])
        conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "And 8."}],
            }
        )
        agent.history.append(
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "And 8."}],
            }
        )
        conn.response.create()
        with contextlib.suppress(SystemExit, Exception):  # the upstream closes with 1011
            agent.until("response.done")
        account["connections"].append(agent.account)
        history = list(agent.history)
    with client.realtime.connect(model="gpt-realtime") as conn:
        agent = Agent(conn)
        agent.until("session.created")
        for item in history:  # the history re-created on the new connection
            conn.conversation.item.create(item=item)  # type: ignore[arg-type]
        account["recreated"] = len(history)
        agent.say("Which numbers?", output_modalities=["text"])
        account["connections"].append(agent.account)
    return account


if __name__ == "__main__":
    client = openai.OpenAI(max_retries=0)
    mode = sys.argv[1] if len(sys.argv) > 1 else "session"
    print(json.dumps(session(client) if mode == "session" else resume(client)))
