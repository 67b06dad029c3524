"""Drives the real Python `openai` client through the llmtap proxy (used by tests/tests/clients.rs).

Usage: python openai_py.py BASE_URL
Prints one JSON object with what the client saw, so the test can compare it with the spans.
"""

import json
import sys

from openai import OpenAI


def main() -> None:
    client = OpenAI(base_url=sys.argv[1], api_key="sk-e2e-python-0000000000000000000000", max_retries=0)
    messages = [{"role": "user", "content": "Say hello"}]
    seen = {}

    created = client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, temperature=0.2, max_tokens=50,
        extra_headers={"x-llmtap-agent": "py-create"},
    )
    seen["create"] = {
        "id": created.id,
        "model": created.model,
        "content": created.choices[0].message.content,
        "finish_reason": created.choices[0].finish_reason,
        "prompt_tokens": created.usage.prompt_tokens,
        "completion_tokens": created.usage.completion_tokens,
    }

    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, temperature=0.2, max_tokens=50, stream=True,
        stream_options={"include_usage": True}, extra_headers={"x-llmtap-agent": "py-stream"},
    )
    content, usage, stream_id = "", None, None
    for chunk in stream:
        stream_id = chunk.id
        if chunk.choices and chunk.choices[0].delta.content:
            content += chunk.choices[0].delta.content
        if chunk.usage:
            usage = chunk.usage
    seen["stream"] = {
        "id": stream_id,
        "content": content,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
    }

    tools = [{
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }]
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.chat.completions.create(
        model="gpt-4o", messages=ask, tools=tools, extra_headers={"x-llmtap-agent": "py-tools"},
    )
    call = first.choices[0].message.tool_calls[0]
    followup = client.chat.completions.create(
        model="gpt-4o", tools=tools, extra_headers={"x-llmtap-agent": "py-tools"},
        messages=ask + [
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": call.id, "type": "function",
                 "function": {"name": call.function.name, "arguments": call.function.arguments}}]},
            {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"},
        ],
    )
    seen["tools"] = {
        "call_id": call.id,
        "name": call.function.name,
        "arguments": json.loads(call.function.arguments),
        "answer": followup.choices[0].message.content,
    }
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
