"""The google-genai SDK's live client (``client.aio.live.connect``), for the Gemini Live
tests: a text session (a text turn, then a tool-call round) and a spoken one (audio in
with the service's voice detection, audio out with transcripts, resumption handles), at the
SDK's own endpoint, reached through ``tracer record --forward``. Prints the SDK's account."""

import asyncio
import json
import os

from google import genai
from google.genai import types

from tracer.upstream.realtime import tone  # the synthetic speech

MODEL = "gemini-live-2.5-flash"
TOOLS = [{"function_declarations": [{"name": "lookup", "description": "Look a fact up.",
          "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}]}]  # fmt: skip


def usage_of(message: types.LiveServerMessage) -> dict | None:
    u = message.usage_metadata
    if u is None:
        return None
    return {"prompt": u.prompt_token_count, "response": u.response_token_count}


async def text_session(client: genai.Client) -> dict:
    config = {"response_modalities": ["TEXT"], "tools": TOOLS}
    out: dict = {"texts": [], "usage": [], "calls": []}
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        for question in ("What is the answer?", "Look it up."):
            await session.send_client_content(
                turns={"role": "user", "parts": [{"text": question}]}, turn_complete=True
            )
            text = ""
            async for m in session.receive():
                text += m.text or ""
                if m.usage_metadata is not None:
                    out["usage"].append(usage_of(m))
                if m.tool_call is not None:
                    calls = m.tool_call.function_calls or []
                    out["calls"] += [c.name for c in calls]
                    break
            if text:
                out["texts"].append(text)
        await session.send_tool_response(
            function_responses=[
                types.FunctionResponse(id=c.id, name=c.name, response={"result": "42"})
                for c in calls
            ]
        )
        text = ""
        async for m in session.receive():
            text += m.text or ""
            if m.usage_metadata is not None:
                out["usage"].append(usage_of(m))
        out["texts"].append(text)
    return out


async def spoken_session(client: genai.Client) -> dict:
    config = {
        "response_modalities": ["AUDIO"],
        "input_audio_transcription": {},
        "output_audio_transcription": {},
        "session_resumption": {},
    }
    out: dict = {"audio_bytes": 0, "transcript": "", "usage": [], "handles": [], "sent": 0}
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        speech = tone(800, rate=16_000)
        for at in range(0, len(speech), 3200):  # 100 ms chunks, then quiet
            blob = types.Blob(data=speech[at : at + 3200], mime_type="audio/pcm;rate=16000")
            await session.send_realtime_input(audio=blob)
            out["sent"] += len(blob.data)
        quiet = types.Blob(data=bytes(3200), mime_type="audio/pcm;rate=16000")
        await session.send_realtime_input(audio=quiet)
        out["sent"] += len(quiet.data)
        async for m in session.receive():
            out["audio_bytes"] += len(m.data or b"")
            content = m.server_content
            if content is not None and content.output_transcription is not None:
                out["transcript"] += content.output_transcription.text or ""
            if m.usage_metadata is not None:
                out["usage"].append(usage_of(m))
        # The resumption handle comes after the turn: read it before closing.
        async for m in session.receive():
            if m.session_resumption_update is not None:
                out["handles"].append(m.session_resumption_update.new_handle)
                break
    return out


async def resumed_session(client: genai.Client, handle: str) -> dict:
    """A new connection that resumes the spoken session by its handle and asks in text (the
    answer is a tool round: the session resumes where the script stood)."""
    config = {"response_modalities": ["TEXT"], "session_resumption": {"handle": handle}}
    out: dict = {"text": "", "usage": []}
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        await session.send_client_content(
            turns={"role": "user", "parts": [{"text": "And again?"}]}, turn_complete=True
        )
        async for m in session.receive():  # a tool call is answered on the way
            out["text"] += m.text or ""
            if m.usage_metadata is not None:
                out["usage"].append(usage_of(m))
            if m.tool_call is not None:
                calls = m.tool_call.function_calls or []
                out["calls"] = [c.name for c in calls]
                await session.send_tool_response(
                    function_responses=[
                        types.FunctionResponse(id=c.id, name=c.name, response={"result": "42"})
                        for c in calls
                    ]
                )
    return out


async def main() -> None:
    # The SDK's own endpoint (wss://generativelanguage.googleapis.com), reached through the
    # recorder's forward proxy (HTTPS_PROXY and its CA, set by ``tracer record --forward``).
    client = genai.Client(api_key=os.environ["GEMINI_API_KEY"])
    text = await text_session(client)
    spoken = await spoken_session(client)
    resumed = await resumed_session(client, spoken["handles"][-1])
    print(json.dumps({"text": text, "spoken": spoken, "resumed": resumed}))


asyncio.run(main())
