"""The openai Python SDK in four ways, one tool round trip each, for the conformance matrix:
``websocket`` (responses.connect, chained), ``websocket-resend`` (the whole history each
turn), ``http-sse`` (streamed, the whole history) and ``http`` (not streamed, stored and
chained). Prints the SDK's own account: the final text and the response ids."""

import json
import sys
from typing import Any

import openai

TOOLS: Any = [
    {
        "type": "function",
        "name": "lookup",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    }
]
QUESTION = [{"role": "user", "content": "What is the answer?"}]


def outputs(response: Any) -> list[dict[str, Any]]:
    return [
        {
            "type": "function_call_output",
            "call_id": item.call_id,
            "output": f"found {item.arguments}",
        }
        for item in response.output
        if item.type == "function_call"
    ]


def main(mode: str) -> None:
    client = openai.OpenAI(max_retries=0)
    ids: list[str] = []
    history: list[Any] = list(QUESTION)
    if mode.startswith("websocket"):
        with client.responses.connect() as conn:
            new: list[Any] = list(QUESTION)
            previous = None
            while True:
                extra = (
                    {"previous_response_id": previous} if previous and mode == "websocket" else {}
                )
                conn.response.create(
                    model="gpt-5.1", tools=TOOLS, input=new if extra else history, **extra
                )
                for event in conn:
                    if event.type == "response.completed":
                        response = event.response
                        break
                ids.append(response.id)
                previous = response.id
                new = outputs(response)
                history += [item.model_dump(exclude_none=True) for item in response.output] + new
                if not new:
                    break
    else:
        previous = None
        new = list(QUESTION)
        while True:
            if mode == "http-sse":
                with client.responses.stream(model="gpt-5.1", tools=TOOLS, input=history) as s:
                    response = s.get_final_response()
            else:
                extra = {"previous_response_id": previous} if previous else {}
                response = client.responses.create(
                    model="gpt-5.1",
                    tools=TOOLS,
                    store=True,
                    input=new if previous else history,
                    **extra,
                )
            ids.append(response.id)
            previous = response.id
            new = outputs(response)
            history += [item.model_dump(exclude_none=True) for item in response.output] + new
            if not new:
                break
    print(json.dumps({"final": response.output_text, "responses": ids}))


main(sys.argv[1])
