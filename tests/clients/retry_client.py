"""The openai Python SDK's own retries: one non-streamed create over HTTP, which the SDK
sends again after a 5xx. Prints its account: the response id, and the retries it took."""

import json

import openai

client = openai.OpenAI(max_retries=2)
raw = client.responses.with_raw_response.create(
    model="gpt-5.6", input=[{"role": "user", "content": "What is the answer?"}]
)
print(json.dumps({"id": raw.parse().id, "retries": raw.retries_taken}))
