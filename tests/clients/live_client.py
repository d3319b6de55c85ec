"""A voice client of the OpenAI Live API (``/v1/live/sessions``) on the ``websockets``
library, sending what recordings of the real service show: ``session.start``, then the
microphone in ``session.input_audio.append`` chunks (speech, then quiet), twice, then
``session.close``. The openai SDK has no Live client. Prints its own account: what it
appended, and per answer the audio and transcript it got and the usage it was told."""

import asyncio
import base64
import hashlib
import json
import os

from websockets.asyncio.client import connect

from tracer.upstream.realtime import tone

CHUNK = 2 * 24 * 100  # 100 ms of 24 kHz PCM16


async def main() -> None:
    base = os.environ["OPENAI_BASE_URL"].replace("http", "ws", 1).rstrip("/")
    headers = {"Authorization": f"Bearer {os.environ['OPENAI_API_KEY']}"}
    account: dict = {"appended": 0, "answers": [], "closed": None, "events": 0}
    digest = hashlib.sha256()  # every event received, in order
    async with connect(f"{base}/live/sessions?model=gpt-live-1", additional_headers=headers) as ws:
        await ws.send(json.dumps({"type": "session.start",
                                  "session": {"model": "gpt-live-1", "store": True}}))  # fmt: skip
        assert json.loads(await ws.recv())["type"] == "session.started"
        for speech_ms in (600, 900):
            pcm = tone(speech_ms) + bytes(2 * CHUNK)  # speech, then 200 ms of quiet
            for at in range(0, len(pcm), CHUNK):
                chunk = base64.b64encode(pcm[at : at + CHUNK]).decode()
                await ws.send(json.dumps({"type": "session.input_audio.append", "audio": chunk}))
                account["appended"] += len(pcm[at : at + CHUNK])
            answer = {"audio": 0, "transcript": "", "heard_end_ms": None}
            while True:
                raw = await ws.recv()
                digest.update(raw.encode() if isinstance(raw, str) else raw)
                account["events"] += 1
                event = json.loads(raw)
                if event["type"] == "session.output_audio.delta":
                    answer["audio"] += len(base64.b64decode(event["delta"]))
                elif event["type"] == "session.output_transcript.delta":
                    answer["transcript"] += event["delta"]
                elif event["type"] == "session.input_transcript.delta":
                    answer["heard_end_ms"] = event["end_ms"]
                elif event["type"] == "session.usage.updated":
                    answer["usage"] = event["usage"]
                    break
            account["answers"].append(answer)
        await ws.send(json.dumps({"type": "session.close"}))
        account["closed"] = json.loads(await ws.recv())["type"]
    account["digest"] = digest.hexdigest()
    print(json.dumps(account))


asyncio.run(main())
