// The openai Node SDK against OPENAI_BASE_URL: a tool round trip over WebSocket mode
// (ResponsesWS, chained with previous_response_id) or HTTP server-sent events. Prints its
// own account as JSON: the final text and the response ids it received.
// Through a forward proxy (HTTPS_PROXY, as `tracer record --forward` sets it): Node 20's
// fetch and the ws package ignore the variable, so the client routes them itself, as a
// Node 20 user would (Node 24 honours it with NODE_USE_ENV_PROXY=1).
import OpenAI from "openai";
import { ResponsesWS } from "openai/resources/responses/ws";
import { ProxyAgent, setGlobalDispatcher } from "undici";
import { HttpsProxyAgent } from "https-proxy-agent";

const transport = process.argv[2];
const proxy = process.env.HTTPS_PROXY;
if (proxy) setGlobalDispatcher(new ProxyAgent(proxy));
const client = new OpenAI({ apiKey: process.env.OPENAI_API_KEY ?? "sk-test-node", maxRetries: 0 });
const tools = [{ type: "function", name: "lookup", parameters: { type: "object", properties: { q: { type: "string" } } } }];
const ids = [];
let text = "";

function toolOutputs(output) {
  return output
    .filter((item) => item.type === "function_call")
    .map((call) => ({ type: "function_call_output", call_id: call.call_id, output: `found ${call.arguments}` }));
}

if (transport === "websocket") {
  const ws = new ResponsesWS(client, proxy ? { agent: new HttpsProxyAgent(proxy) } : {});
  const events = ws.stream();
  let input = [{ role: "user", content: "What is the answer?" }];
  let previous;
  for (;;) {
    ws.send({ type: "response.create", model: "gpt-5.1", tools, input, ...(previous ? { previous_response_id: previous } : {}) });
    let done;
    for (;;) {
      const { value } = await events.next();
      if (value.type === "message" && value.message.type === "response.completed") { done = value.message.response; break; }
      if (value.type === "error" || value.type === "close") throw new Error(`socket: ${value.type}`);
    }
    ids.push(done.id);
    previous = done.id;
    input = toolOutputs(done.output);
    if (!input.length) { text = done.output_text ?? done.output.flatMap((o) => o.content ?? []).map((c) => c.text ?? "").join(""); break; }
  }
  ws.close({ code: 1000, reason: "done" });
} else {
  let input = [{ role: "user", content: "What is the answer?" }];
  for (;;) {
    const stream = await client.responses.create({ model: "gpt-5.1", tools, input, stream: true });
    let done;
    for await (const event of stream) {
      if (event.type === "response.completed") done = event.response;
    }
    ids.push(done.id);
    const outputs = toolOutputs(done.output);
    if (!outputs.length) { text = done.output.flatMap((o) => o.content ?? []).map((c) => c.text ?? "").join(""); break; }
    input = [...input, ...done.output, ...outputs];  // HTTP: the whole history again
  }
}
console.log(JSON.stringify({ final: text, responses: ids }));
