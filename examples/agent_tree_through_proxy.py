#!/usr/bin/env python3
"""Run with: python3 examples/agent_tree_through_proxy.py

An agent tree built from Python with no OpenTelemetry SDK: every call goes through
`llmtap proxy` with the official `openai` client, which records each call as a span.

- `x-llmtap-agent` / `x-llmtap-session` name the agent and the session on each call;
- the proxy answers with `traceresponse: 00-<trace>-<span>-01` (its span for that call);
- a sub-agent spawned because of that answer sends it back as `traceparent`, so its calls nest
  under the call that spawned it (vottur's `_spawnedBy`, in OpenTelemetry).

Prerequisite: the `openai` package (pip install openai).

With no API key, three terminals:
    llmtap mock                                                # built-in upstream, 127.0.0.1:8420
    llmtap proxy --upstream-openai http://127.0.0.1:8420       # the proxy, 127.0.0.1:8421
    python3 examples/agent_tree_through_proxy.py
With the real API: `llmtap proxy`, then OPENAI_API_KEY=sk-... python3 examples/agent_tree_through_proxy.py
Environment: LLMTAP_PROXY_URL (default http://127.0.0.1:8421/v1), OPENAI_API_KEY
(any value works against a mock), LLMTAP_EXAMPLE_MODEL (default gpt-4o-mini).
Then: llmtap tree .llmtap/traces.jsonl
"""

import os
import uuid

from openai import OpenAI

PROXY = os.environ.get("LLMTAP_PROXY_URL", "http://127.0.0.1:8421/v1")
MODEL = os.environ.get("LLMTAP_EXAMPLE_MODEL", "gpt-4o-mini")
SESSION = f"py-{uuid.uuid4().hex[:8]}"

client = OpenAI(base_url=PROXY, api_key=os.environ.get("OPENAI_API_KEY", "sk-mock"))


def call(agent: str, prompt: str, parent: str | None = None) -> tuple[str, str | None]:
    """One model call as `agent`; returns the answer and the call's span (`traceresponse`)."""
    headers = {"x-llmtap-agent": agent, "x-llmtap-session": SESSION}
    if parent:
        headers["traceparent"] = parent
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": prompt}],
        extra_headers=headers,
    )
    answer = raw.parse().choices[0].message.content or ""
    return answer, raw.headers.get("traceresponse")


def main() -> None:
    plan, plan_span = call("orchestrator", "Split the report into three research topics.")
    notes = []
    for topic in ["rust async runtimes", "opentelemetry genai", "agent swarms"]:
        # Each researcher is spawned by the planning call: its calls nest under that span.
        note, _ = call(f"researcher:{topic}", f"Research {topic}", parent=plan_span)
        notes.append(note)
    report, _ = call("writer", "Write a report from: " + " | ".join(notes), parent=plan_span)
    print(report)
    print(f"session {SESSION}: see it with `llmtap tree .llmtap/traces.jsonl --session {SESSION}`")


if __name__ == "__main__":
    main()
