// Drives the real Node `openai` client through the llmtap proxy (used by tests/tests/clients.rs).
// Usage: node openai_node.mjs BASE_URL  — prints one JSON object with what the client saw.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.argv[2], apiKey: "sk-e2e-node-00000000000000000000000", maxRetries: 0 });
const messages = [{ role: "user", content: "Say hello" }];
const seen = {};

const created = await client.chat.completions.create(
  { model: "gpt-4o-mini", messages, temperature: 0.2, max_tokens: 50 },
  { headers: { "x-llmtap-agent": "node-create" } },
);
seen.create = {
  id: created.id,
  content: created.choices[0].message.content,
  prompt_tokens: created.usage.prompt_tokens,
  completion_tokens: created.usage.completion_tokens,
};

const stream = await client.chat.completions.create(
  { model: "gpt-4o-mini", messages, temperature: 0.2, max_tokens: 50, stream: true, stream_options: { include_usage: true } },
  { headers: { "x-llmtap-agent": "node-stream" } },
);
let content = "";
let usage = null;
let id = null;
for await (const chunk of stream) {
  id = chunk.id;
  if (chunk.choices.length && chunk.choices[0].delta.content) content += chunk.choices[0].delta.content;
  if (chunk.usage) usage = chunk.usage;
}
seen.stream = { id, content, prompt_tokens: usage.prompt_tokens, completion_tokens: usage.completion_tokens };
console.log(JSON.stringify(seen));
