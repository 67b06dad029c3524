// The real-client matrix for Node `openai` (tests/tests/real_world.rs): create, stream, and a
// stream abandoned midway, through the llmtap proxy, one mock scenario at a time.
// Usage: node matrix_node.mjs PROXY_ROOT_URL SCENARIO TAG — prints one JSON object keyed by the
// calls' `x-llmtap-agent` (`TAG-<call>`) with the text and usage the client saw.
import OpenAI from "openai";

const [root, scenario, tag] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${root}/v1`, apiKey: "sk-matrix-node-0000000000000000000", maxRetries: 0 });
const messages = [{ role: "user", content: "Say hello" }];
const headers = (call, sc = scenario) => ({ "x-llmtap-agent": `${tag}-${call}`, "x-mock-scenario": sc });
const seen = {};

const created = await client.chat.completions.create(
  { model: "gpt-4o-mini", messages },
  { headers: headers("node-create") },
);
seen[`${tag}-node-create`] = {
  text: created.choices[0].message.content,
  input: created.usage.prompt_tokens,
  output: created.usage.completion_tokens,
};

const stream = await client.chat.completions.create(
  { model: "gpt-4o-mini", messages, stream: true, stream_options: { include_usage: true } },
  { headers: headers("node-stream") },
);
let text = "";
let usage = null;
for await (const chunk of stream) {
  if (chunk.choices.length && chunk.choices[0].delta.content) text += chunk.choices[0].delta.content;
  if (chunk.usage) usage = chunk.usage;
}
seen[`${tag}-node-stream`] = { text, input: usage.prompt_tokens, output: usage.completion_tokens };

const slow = await client.chat.completions.create(
  { model: "gpt-4o-mini", messages, stream: true },
  { headers: headers("node-abandon", `${scenario},slow:150,chunks:30`) },
);
let n = 0;
for await (const _chunk of slow) {
  n += 1;
  if (n === 2) break; // leaving the loop aborts the request
}
seen[`${tag}-node-abandon`] = { abandoned: true };

console.log(JSON.stringify(seen));
