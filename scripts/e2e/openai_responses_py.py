"""Drives the real Python `openai` client's Responses API through the llmtap proxy
(tests/tests/provider_clients.rs).

Usage: python openai_responses_py.py BASE_URL
Prints one JSON object with what the client saw.
"""

import json
import sys

from openai import OpenAI


def usage_of(u):
    return {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cached_tokens": u.input_tokens_details.cached_tokens,
        "reasoning_tokens": u.output_tokens_details.reasoning_tokens,
    }


def main() -> None:
    client = OpenAI(base_url=sys.argv[1], api_key="sk-e2e-python-0000000000000000000000", max_retries=0)
    seen = {}

    created = client.responses.create(
        model="o4-mini", instructions="You are terse.", input="Say hello",
        reasoning={"effort": "low"}, previous_response_id="resp_e2e_previous",
        extra_headers={"x-llmtap-agent": "py-create"},
    )
    seen["create"] = {
        "id": created.id,
        "model": created.model,
        "text": created.output_text,
        "status": created.status,
        "usage": usage_of(created.usage),
    }

    stream = client.responses.create(
        model="gpt-4.1", input=[{"role": "user", "content": "Say hello"}], stream=True,
        extra_headers={"x-llmtap-agent": "py-stream"},
    )
    text, final = "", None
    for event in stream:
        if event.type == "response.output_text.delta":
            text += event.delta
        elif event.type == "response.completed":
            final = event.response
    seen["stream"] = {"id": final.id, "text": text, "usage": usage_of(final.usage)}

    tools = [{
        "type": "function", "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }]
    first = client.responses.create(
        model="gpt-4.1", input="Weather in Paris?", tools=tools,
        extra_headers={"x-llmtap-agent": "py-tools"},
    )
    call = next(i for i in first.output if i.type == "function_call")
    followup = client.responses.create(
        model="gpt-4.1", tools=tools, extra_headers={"x-llmtap-agent": "py-tools"},
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "18C and sunny"},
        ],
    )
    seen["tools"] = {
        "call_id": call.call_id,
        "name": call.name,
        "arguments": json.loads(call.arguments),
        "answer": followup.output_text,
    }
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
