//! Every captured message llmtap writes validates against the gen_ai message-parts JSON schema in
//! `proto/genai/gen-ai-messages.schema.json`: a corpus of calls over every API the proxy records
//! (chat with tools, images and streams, legacy completions, Anthropic Messages, OpenAI Responses,
//! Gemini) goes through the real proxy, and each content attribute of each span is checked.

use anyhow::{Context as _, Result, bail, ensure};
use http::StatusCode;
use llmtap_core::semconv as sc;
use llmtap_tests::clients::repo_root;
use llmtap_tests::stack::Stack;
use serde_json::{Value, json};

/// A draft-07 subset validator: `type`, `required`, `properties`, `items`, `const`, `$ref` to
/// `#/definitions/*`, plus the schema's `oneOfByType` dispatch on a part's `type`.
struct Schema {
    root: Value,
}

impl Schema {
    fn load() -> Result<Self> {
        let text =
            std::fs::read_to_string(repo_root().join("proto/genai/gen-ai-messages.schema.json"))?;
        Ok(Self {
            root: serde_json::from_str(&text)?,
        })
    }

    fn definition(&self, name: &str) -> Result<&Value> {
        self.root
            .pointer(&format!("/definitions/{name}"))
            .with_context(|| format!("no definition {name}"))
    }

    fn validate(&self, definition: &str, value: &Value) -> Result<()> {
        let schema = self.definition(definition)?;
        self.check(schema, value, definition)
    }

    fn check(&self, schema: &Value, value: &Value, path: &str) -> Result<()> {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let name = reference
                .strip_prefix("#/definitions/")
                .context("only local refs")?;
            return self.check(self.definition(name)?, value, path);
        }
        if let Some(expected) = schema.get("const") {
            ensure!(
                value == expected,
                "{path}: expected {expected}, got {value}"
            );
        }
        if let Some(types) = schema.get("type") {
            let allowed: Vec<&str> = match types {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => bail!("bad type keyword"),
            };
            let actual = match value {
                Value::Null => "null",
                Value::Bool(_) => "boolean",
                Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            };
            ensure!(
                allowed.contains(&actual) || (actual == "integer" && allowed.contains(&"number")),
                "{path}: expected {allowed:?}, got {actual}"
            );
        }
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for key in required.iter().filter_map(Value::as_str) {
                ensure!(value.get(key).is_some(), "{path}: missing required `{key}`");
            }
        }
        if let (Some(props), Some(object)) = (
            schema.get("properties").and_then(Value::as_object),
            value.as_object(),
        ) {
            for (key, sub) in props {
                if let Some(field) = object.get(key) {
                    self.check(sub, field, &format!("{path}.{key}"))?;
                }
            }
        }
        if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
            for (i, item) in array.iter().enumerate() {
                self.check(items, item, &format!("{path}[{i}]"))?;
            }
        }
        if let Some(by_type) = schema.get("oneOfByType").and_then(Value::as_object)
            && let Some(kind) = value.get("type").and_then(Value::as_str)
            && let Some(sub) = by_type.get(kind)
        {
            self.check(sub, value, &format!("{path}<{kind}>"))?;
        }
        Ok(())
    }
}

const CONTENT: [(&str, &str); 4] = [
    (sc::GEN_AI_INPUT_MESSAGES, "InputMessages"),
    (sc::GEN_AI_OUTPUT_MESSAGES, "OutputMessages"),
    (sc::GEN_AI_SYSTEM_INSTRUCTIONS, "SystemInstructions"),
    (sc::GEN_AI_TOOL_DEFINITIONS, "ToolDefinitions"),
];

#[test]
fn the_validator_rejects_what_the_schema_forbids() -> Result<()> {
    let schema = Schema::load()?;
    let good = json!([{"role": "assistant", "finish_reason": "stop",
        "parts": [{"type": "text", "content": "hi"}, {"type": "x-custom", "any": 1}]}]);
    schema.validate("OutputMessages", &good)?;
    for bad in [
        json!([{"role": "assistant", "parts": []}]),
        json!([{"role": "assistant", "finish_reason": "stop", "parts": [{"type": "text"}]}]),
        json!([{"role": "assistant", "finish_reason": "stop",
            "parts": [{"type": "tool_call_response", "result": 1}]}]),
        json!([{"role": "assistant", "finish_reason": "stop", "parts": [{"content": "no type"}]}]),
        json!({"role": "assistant"}),
    ] {
        assert!(
            schema.validate("OutputMessages", &bad).is_err(),
            "accepted {bad}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn every_captured_message_validates() -> Result<()> {
    let schema = Schema::load()?;
    let mut stack = Stack::start().await?;
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let corpus: Vec<(&str, Value)> = vec![
        (
            "/v1/chat/completions",
            json!({
            "model": "gpt-4o", "tools": tools,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in this picture and the weather?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"}
            ]}),
        ),
        (
            "/v1/chat/completions",
            json!({
            "model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true},
            "tools": tools, "messages": [{"role": "user", "content": "Weather in Oslo?"}]}),
        ),
        (
            "/v1/chat/completions",
            json!({
            "model": "gpt-4o-mini", "n": 2, "stream": true,
            "messages": [{"role": "developer", "content": "JSON only"}, {"role": "user", "content": "Hi"}]}),
        ),
        (
            "/v1/completions",
            json!({"model": "gpt-3.5-turbo-instruct", "prompt": ["Once", "upon"]}),
        ),
        (
            "/v1/messages",
            json!({
            "model": "claude-sonnet-4-5", "max_tokens": 256,
            "system": [{"type": "text", "text": "You are terse."}],
            "tools": [{"name": "get_weather", "description": "Weather",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
            "messages": [
                {"role": "user", "content": "Weather in Rome?"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Rome"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "22C"}]}
            ]}),
        ),
        (
            "/v1/messages",
            json!({
            "model": "claude-sonnet-4-5", "max_tokens": 256, "stream": true,
            "messages": [{"role": "user", "content": "Say hello"}]}),
        ),
        (
            "/v1/responses",
            json!({
            "model": "gpt-4.1", "instructions": "Be brief.",
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "Say hello"}]}]}),
        ),
        (
            "/v1/responses",
            json!({
            "model": "gpt-4.1", "stream": true, "input": "Say hello", "tools": [{"type": "function",
                "name": "get_weather", "parameters": {"type": "object", "properties": {}}}]}),
        ),
        (
            "/v1beta/models/gemini-2.5-flash:generateContent",
            json!({
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]}),
        ),
        (
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            json!({
            "contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]}),
        ),
    ];
    for (path, body) in &corpus {
        let reply = stack.post(path, &body.to_string(), &[]).await?;
        ensure!(
            reply.status == StatusCode::OK,
            "{path}: HTTP {} {}",
            reply.status,
            reply.text()
        );
    }
    let (_, spans) = stack.stop().await?;
    ensure!(spans.len() == corpus.len(), "{} spans", spans.len());
    let mut checked = 0;
    for span in &spans {
        for (key, definition) in CONTENT {
            if let Some(text) = span.attr_str(key) {
                let value: Value = serde_json::from_str(&text)
                    .with_context(|| format!("{}: {key} is not JSON", span.name()))?;
                schema
                    .validate(definition, &value)
                    .with_context(|| format!("{}: {key} = {text}", span.name()))?;
                checked += 1;
            }
        }
        ensure!(
            span.attr_str(sc::GEN_AI_INPUT_MESSAGES).is_some(),
            "{}: no input messages",
            span.name()
        );
        ensure!(
            span.attr_str(sc::GEN_AI_OUTPUT_MESSAGES).is_some(),
            "{}: no output messages",
            span.name()
        );
    }
    assert!(
        checked >= 2 * corpus.len(),
        "only {checked} documents checked"
    );
    Ok(())
}
