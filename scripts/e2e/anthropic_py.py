"""Drives the real Python `anthropic` client through the llmtap proxy (tests/tests/provider_clients.rs).

Usage: python anthropic_py.py BASE_URL
Prints one JSON object with what the client saw (ids, usage, text, tool calls), so the test can
compare it with the spans.
"""

import json
import sys

import anthropic


def usage_of(u):
    return {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_read_input_tokens": u.cache_read_input_tokens or 0,
        "cache_creation_input_tokens": u.cache_creation_input_tokens or 0,
    }


def main() -> None:
    client = anthropic.Anthropic(
        base_url=sys.argv[1], api_key="sk-ant-e2e-python-000000000000000000", max_retries=0,
    )
    seen = {}
    system = [{"type": "text", "text": "You are a terse assistant.", "cache_control": {"type": "ephemeral"}}]
    messages = [{"role": "user", "content": "Say hello"}]

    created = client.messages.create(
        model="claude-sonnet-4-5", max_tokens=100, system=system, messages=messages,
        extra_headers={"x-llmtap-agent": "py-create"},
    )
    seen["create"] = {
        "id": created.id,
        "model": created.model,
        "text": created.content[0].text,
        "stop_reason": created.stop_reason,
        "usage": usage_of(created.usage),
    }

    with client.messages.stream(
        model="claude-sonnet-4-5", max_tokens=100, system=system, messages=messages,
        thinking={"type": "enabled", "budget_tokens": 1024},
        extra_headers={"x-llmtap-agent": "py-stream"},
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    seen["stream"] = {
        "id": final.id,
        "text": text,
        "thinking": next(b.thinking for b in final.content if b.type == "thinking"),
        "stop_reason": final.stop_reason,
        "usage": usage_of(final.usage),
    }

    tools = [{
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }]
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.messages.create(
        model="claude-haiku-4-5", max_tokens=100, tools=tools, messages=ask,
        extra_headers={"x-llmtap-agent": "py-tools"},
    )
    call = next(b for b in first.content if b.type == "tool_use")
    followup = client.messages.create(
        model="claude-haiku-4-5", max_tokens=100, tools=tools,
        extra_headers={"x-llmtap-agent": "py-tools"},
        messages=ask + [
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": call.id, "content": "18C and sunny"}]},
        ],
    )
    seen["tools"] = {
        "id": call.id,
        "name": call.name,
        "input": call.input,
        "stop_reason": first.stop_reason,
        "answer": followup.content[0].text,
    }
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
