"""Drives the real Python `google-genai` client through the llmtap proxy
(tests/tests/provider_clients.rs).

Usage: python gemini_py.py BASE_URL
Prints one JSON object with what the client saw.
"""

import json
import sys

from google import genai
from google.genai import types


def usage_of(u):
    return {
        "prompt": u.prompt_token_count,
        "candidates": u.candidates_token_count,
        "thoughts": u.thoughts_token_count or 0,
        "total": u.total_token_count,
    }


def main() -> None:
    client = genai.Client(
        api_key="AIzaSy-e2e-python-gemini-key-000000000",
        http_options=types.HttpOptions(base_url=sys.argv[1]),
    )
    seen = {}
    config = types.GenerateContentConfig(
        system_instruction="You are terse.", temperature=0.2, max_output_tokens=200,
        http_options=types.HttpOptions(headers={"x-llmtap-agent": "py-create"}),
    )
    created = client.models.generate_content(model="gemini-2.5-flash", contents="Say hello", config=config)
    seen["create"] = {
        "id": created.response_id,
        "model": created.model_version,
        "text": created.text,
        "finish_reason": created.candidates[0].finish_reason.value,
        "usage": usage_of(created.usage_metadata),
    }

    stream_config = types.GenerateContentConfig(
        system_instruction="You are terse.",
        http_options=types.HttpOptions(headers={"x-llmtap-agent": "py-stream"}),
    )
    text, last = "", None
    for chunk in client.models.generate_content_stream(
        model="gemini-2.5-flash", contents="Say hello", config=stream_config,
    ):
        text += chunk.text or ""
        last = chunk
    seen["stream"] = {"id": last.response_id, "text": text, "usage": usage_of(last.usage_metadata)}

    weather = types.FunctionDeclaration(
        name="get_weather", description="Weather for a city",
        parameters=types.Schema(type="OBJECT", properties={"city": types.Schema(type="STRING")}, required=["city"]),
    )
    tool_config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[weather])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        http_options=types.HttpOptions(headers={"x-llmtap-agent": "py-tools"}),
    )
    first = client.models.generate_content(model="gemini-2.5-flash", contents="Weather in Paris?", config=tool_config)
    call = first.function_calls[0]
    seen["tools"] = {"name": call.name, "args": call.args}
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
