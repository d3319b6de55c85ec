"""The official openai SDK against the scripted upstream, over WebSocket mode and HTTP SSE."""

from __future__ import annotations

import json

import openai
import pytest

from tracer.upstream import Call, Script, TurnScript, running_upstream

TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]

SCRIPT = Script(
    turns=(
        TurnScript(text="Let me check.", calls=(Call("get_weather", '{"city":"Paris"}'),)),
        TurnScript(text="And the other one.", calls=(Call("get_weather", '{"city":"Rome"}'),)),
        TurnScript(text="Paris is sunny and Rome is warm."),
    ),
    seed=3,
)


@pytest.fixture
def upstream():
    with running_upstream(SCRIPT) as server:
        yield server


def test_sdk_websocket_chained_turns_with_function_calls(upstream):
    client = openai.OpenAI(api_key="sk-test-not-a-real-key-000000", base_url=upstream.base_url)
    completed = []
    deltas = []
    with client.responses.connect() as conn:
        conn.response.create(
            model="m", input="Weather in Paris and Rome?", tools=TOOLS, store=False
        )
        for event in conn:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
            if event.type == "error":
                pytest.fail(f"unexpected error event: {event}")
            if event.type != "response.completed":
                continue
            response = event.response
            completed.append(response)
            calls = [o for o in response.output if o.type == "function_call"]
            if not calls:
                break
            outputs = [
                {
                    "type": "function_call_output",
                    "call_id": c.call_id,
                    "output": json.dumps({"city": json.loads(c.arguments)["city"], "t": 21}),
                }
                for c in calls
            ]
            conn.response.create(
                model="m",
                previous_response_id=response.id,
                input=outputs,
                tools=TOOLS,
                store=False,
            )
    assert len(completed) == 3
    first, second, third = completed
    assert [o.type for o in first.output] == ["message", "function_call"]
    assert first.output[1].name == "get_weather"
    assert json.loads(first.output[1].arguments) == {"city": "Paris"}
    assert json.loads(second.output[1].arguments) == {"city": "Rome"}
    assert third.output[0].content[0].text == "Paris is sunny and Rome is warm."
    assert second.previous_response_id == first.id
    assert third.previous_response_id == second.id
    # The chain's context grows and the connection cache covers what came before.
    assert first.usage.input_tokens_details.cached_tokens == 0
    assert 0 < second.usage.input_tokens_details.cached_tokens < second.usage.input_tokens
    assert third.usage.input_tokens > second.usage.input_tokens
    assert "".join(deltas).startswith("Let me check.")


def test_sdk_http_streaming(upstream):
    client = openai.OpenAI(api_key="sk-test-not-a-real-key-000000", base_url=upstream.base_url)
    stream = client.responses.create(model="m", input="Weather?", tools=TOOLS, stream=True)
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds
    assert "response.function_call_arguments.delta" in kinds
    final = events[-1].response
    # store=true over HTTP: the next request can chain from the stored response.
    follow = client.responses.create(
        model="m",
        previous_response_id=final.id,
        input=[
            {"type": "function_call_output", "call_id": final.output[1].call_id, "output": "21C"}
        ],
        tools=TOOLS,
        stream=True,
    )
    last = list(follow)[-1]
    assert last.type == "response.completed"
    assert last.response.previous_response_id == final.id
    assert last.response.usage.input_tokens_details.cached_tokens > 0


def test_sdk_http_unknown_previous_id_is_an_api_error(upstream):
    client = openai.OpenAI(
        api_key="sk-test-not-a-real-key-000000", base_url=upstream.base_url, max_retries=0
    )
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="m", input="x", previous_response_id="resp_nope")
    assert info.value.code == "previous_response_not_found"
