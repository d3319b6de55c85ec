// @openai/agents (JS) against tracer's proxy: one agent run with a tool round trip, over its
// WebSocket session (withResponsesWebSocketSession; URL from OPENAI_WEBSOCKET_BASE_URL) or
// its HTTP default. Prints its own account: the final output and the response ids.
import { Agent, run, tool } from "@openai/agents";
import { withResponsesWebSocketSession } from "@openai/agents-openai";
import { z } from "zod";

const transport = process.argv[2];
const lookup = tool({
  name: "lookup",
  description: "Look something up.",
  parameters: z.object({ q: z.string() }),
  execute: async ({ q }) => `found ${q}`,
});
const agent = new Agent({ name: "helper", instructions: "Be brief.", model: "gpt-5.1", tools: [lookup] });
const result =
  transport === "websocket"
    ? await withResponsesWebSocketSession((session) => session.run(agent, "What is the answer?"))
    : await run(agent, "What is the answer?");
const ids = result.rawResponses.map((r) => r.responseId);
console.log(JSON.stringify({ final: result.finalOutput, responses: ids }));
