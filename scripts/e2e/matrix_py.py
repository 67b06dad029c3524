"""The real-client matrix (tests/tests/real_world.rs): every Python client the tests cover, one
scenario at a time, through the llmtap proxy to the mock upstream behaving like a real server
(`x-mock-scenario`: a late end of body, compression, CL+TE framing, many headers).

Usage: python matrix_py.py PROXY_ROOT_URL SCENARIO TAG
Prints one JSON object: per call (keyed by its `x-llmtap-agent`, `TAG-<call>`), the text the
client assembled and the usage it read, normalised to llmtap's convention (input includes cached
tokens, output includes reasoning), so the test compares them with the span as they are.
A stream the caller abandons midway is listed with `"abandoned": true`.
"""

import asyncio
import json
import sys

import anthropic
from openai import AsyncOpenAI, OpenAI

ROOT, SCENARIO, TAG = sys.argv[1], sys.argv[2], sys.argv[3]
MESSAGES = [{"role": "user", "content": "Say hello"}]
seen = {}


def headers(call, scenario=SCENARIO):
    return {"x-llmtap-agent": f"{TAG}-{call}", "x-mock-scenario": scenario}


def record(call, text, input_tokens, output_tokens):
    seen[f"{TAG}-{call}"] = {"text": text, "input": input_tokens, "output": output_tokens}


def openai_sync():
    client = OpenAI(base_url=ROOT + "/v1", api_key="sk-matrix-python-000000000000000000", max_retries=0)
    created = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers=headers("openai-sync-create"),
    )
    record("openai-sync-create", created.choices[0].message.content,
           created.usage.prompt_tokens, created.usage.completion_tokens)

    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True},
        extra_headers=headers("openai-sync-stream"),
    )
    text, usage = "", None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage:
            usage = chunk.usage
    record("openai-sync-stream", text, usage.prompt_tokens, usage.completion_tokens)

    # The caller stops after two chunks of a slow stream and closes it.
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True,
        extra_headers=headers("openai-abandon", SCENARIO + ",slow:150,chunks:30"),
    )
    pieces = iter(stream)
    next(pieces)
    next(pieces)
    stream.close()
    seen[f"{TAG}-openai-abandon"] = {"abandoned": True}


async def openai_async():
    client = AsyncOpenAI(base_url=ROOT + "/v1", api_key="sk-matrix-python-000000000000000000", max_retries=0)
    created = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers=headers("openai-async-create"),
    )
    record("openai-async-create", created.choices[0].message.content,
           created.usage.prompt_tokens, created.usage.completion_tokens)
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True},
        extra_headers=headers("openai-async-stream"),
    )
    text, usage = "", None
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage:
            usage = chunk.usage
    record("openai-async-stream", text, usage.prompt_tokens, usage.completion_tokens)
    await client.close()


def anthropic_input(usage):
    return usage.input_tokens + (usage.cache_read_input_tokens or 0) + (usage.cache_creation_input_tokens or 0)


def anthropic_calls():
    client = anthropic.Anthropic(base_url=ROOT, api_key="sk-ant-matrix-python-0000000000000", max_retries=0)
    created = client.messages.create(
        model="claude-sonnet-4-5", max_tokens=200, messages=MESSAGES,
        extra_headers=headers("anthropic-create"),
    )
    record("anthropic-create", created.content[0].text, anthropic_input(created.usage), created.usage.output_tokens)
    with client.messages.stream(
        model="claude-sonnet-4-5", max_tokens=200, messages=MESSAGES,
        extra_headers=headers("anthropic-stream"),
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    record("anthropic-stream", text, anthropic_input(final.usage), final.usage.output_tokens)


def gemini_calls():
    try:
        from google import genai
        from google.genai import types
    except ImportError:
        seen["gemini-missing"] = True
        return

    def config(call):
        return types.GenerateContentConfig(http_options=types.HttpOptions(headers=headers(call)))

    client = genai.Client(
        api_key="AIzaSy-matrix-python-gemini-key-0000000",
        http_options=types.HttpOptions(base_url=ROOT),
    )
    created = client.models.generate_content(
        model="gemini-2.5-flash", contents="Say hello", config=config("gemini-create"),
    )
    u = created.usage_metadata
    record("gemini-create", created.text, u.prompt_token_count,
           (u.candidates_token_count or 0) + (u.thoughts_token_count or 0))
    text, last = "", None
    for chunk in client.models.generate_content_stream(
        model="gemini-2.5-flash", contents="Say hello", config=config("gemini-stream"),
    ):
        text += chunk.text or ""
        last = chunk
    u = last.usage_metadata
    record("gemini-stream", text, u.prompt_token_count,
           (u.candidates_token_count or 0) + (u.thoughts_token_count or 0))


def main():
    openai_sync()
    asyncio.run(openai_async())
    anthropic_calls()
    gemini_calls()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
