"""The openai SDK over HTTP with compaction, for ``test_compaction``: two chained turns,
``responses.compact`` of the chain, a new chain that starts with what the compaction
returned, and one more chained turn. Prints the SDK's own account."""

import json
import warnings

import openai

warnings.simplefilter("ignore")  # the SDK warns dumping user messages it parsed as output
client = openai.OpenAI(max_retries=0)
r1 = client.responses.create(model="gpt-5.6", input="Plan the work.")
r2 = client.responses.create(model="gpt-5.6", input="Go on.", previous_response_id=r1.id)
c = client.responses.compact(model="gpt-5.6", previous_response_id=r2.id)
items = [i.model_dump(exclude_none=True) for i in c.output]
r3 = client.responses.create(
    model="gpt-5.6", input=[*items, {"role": "user", "content": "Continue."}]
)
r4 = client.responses.create(model="gpt-5.6", input="Finish.", previous_response_id=r3.id)
account = {
    "ids": [r1.id, r2.id, c.id, r3.id, r4.id],
    "compacted": len(items),
    "compaction_usage": c.usage.model_dump(exclude_none=True),
}
print(json.dumps(account))
