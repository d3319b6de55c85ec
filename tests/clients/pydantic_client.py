"""pydantic-ai against OPENAI_BASE_URL: one agent run with a tool round trip; prints its own
account (the final output and the response ids it got) as JSON."""

import json
import os
import sys

from pydantic_ai import Agent
from pydantic_ai.messages import ModelResponse
from pydantic_ai.models.openai import OpenAIResponsesModel, OpenAIResponsesModelSettings
from pydantic_ai.providers.openai import OpenAIProvider

transport = sys.argv[1]
provider = OpenAIProvider(
    base_url=os.environ["OPENAI_BASE_URL"], api_key=os.environ.get("OPENAI_API_KEY", "sk-test")
)
settings = OpenAIResponsesModelSettings(openai_transport=transport)
model = OpenAIResponsesModel("gpt-5.1", provider=provider, settings=settings)
agent = Agent(model, instructions="Be brief.")


@agent.tool_plain
def lookup(q: str) -> str:
    return f"found {q}"


result = agent.run_sync("What is the answer?")
ids = [m.provider_response_id for m in result.all_messages() if isinstance(m, ModelResponse)]
print(json.dumps({"final": result.output, "responses": ids}))
