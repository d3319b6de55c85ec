"""An openai-agents (Python) run with a function tool, for the client tests: run by
``tracer record -- python agents_client.py websocket|http``; prints the SDK's own account
(its final output and the response ids of every model call)."""

import asyncio
import json
import sys

from agents import Agent, RunConfig, Runner, function_tool, set_tracing_disabled
from agents.models.openai_provider import OpenAIProvider

set_tracing_disabled(True)


@function_tool
def lookup(q: str) -> str:
    """Look something up."""
    return "42"


async def main(transport: str) -> None:
    agent = Agent(
        name="finder", instructions="Use the lookup tool.", tools=[lookup], model="gpt-test"
    )
    provider = OpenAIProvider(use_responses_websocket=transport == "websocket", use_responses=True)
    config = RunConfig(model_provider=provider)
    result = await Runner.run(agent, "Find the answer.", run_config=config)
    responses = [r.response_id for r in result.raw_responses]
    print(json.dumps({"final": result.final_output, "responses": responses}))


asyncio.run(main(sys.argv[1]))
