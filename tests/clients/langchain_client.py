"""langchain-openai (Responses API) against OPENAI_BASE_URL: a tool round trip by hand."""

import json
import os
import sys

from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI


@tool
def lookup(q: str) -> str:
    """Look something up."""
    return f"found {q}"


streaming = sys.argv[1] == "stream"
llm = ChatOpenAI(
    model="gpt-5.1",
    use_responses_api=True,
    streaming=streaming,
    base_url=os.environ["OPENAI_BASE_URL"],
    api_key=os.environ.get("OPENAI_API_KEY", "sk-test"),
)
bound = llm.bind_tools([lookup])
messages = [HumanMessage("What is the answer?")]
ids = []
while True:
    ai = bound.invoke(messages)
    ids.append(ai.response_metadata.get("id") or ai.id)
    messages.append(ai)
    if not ai.tool_calls:
        break
    for call in ai.tool_calls:
        messages.append(ToolMessage(lookup.invoke(call["args"]), tool_call_id=call["id"]))
print(json.dumps({"final": ai.text if isinstance(ai.text, str) else ai.text(), "responses": ids}))
