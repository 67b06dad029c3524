#!/usr/bin/env python3
"""Run with: python3 examples/otel_app_through_proxy.py

An application already instrumented with the OpenTelemetry SDK, calling its model through
`llmtap proxy`: its own `invoke_agent` span and the proxy's model span land in ONE trace, the
model span a child of the agent span, in the same collector.

- the app exports its spans over OTLP (`OTEL_EXPORTER_OTLP_ENDPOINT`, read by the SDK itself);
- it sends the active span as W3C `traceparent` with each model call (`propagate.inject`), so
  the proxy parents its span under the app's;
- it names its agent (`x-llmtap-agent`) and says it records that agent's span itself
  (`x-llmtap-agent-span: <span id>`), so the proxy adds no `invoke_agent` span of its own;
- the proxy exports to the same collector (start it with the same `OTEL_EXPORTER_OTLP_ENDPOINT`).

Needs: pip install openai opentelemetry-sdk opentelemetry-exporter-otlp-proto-http
(versions pinned in scripts/e2e/requirements.txt). Then, with a collector on :4318:
    OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 llmtap proxy   # add --upstream-openai <mock>
                                                                     # to run without a key
    OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 python3 examples/otel_app_through_proxy.py
Environment: LLMTAP_PROXY_URL (default http://127.0.0.1:8421/v1), OPENAI_API_KEY (any value
works against a mock), LLMTAP_EXAMPLE_MODEL (default gpt-4o-mini), OTEL_SERVICE_NAME.
Prints one JSON object: the app's trace and span ids and the answer.
"""

import json
import os

from openai import OpenAI
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

PROXY = os.environ.get("LLMTAP_PROXY_URL", "http://127.0.0.1:8421/v1")
MODEL = os.environ.get("LLMTAP_EXAMPLE_MODEL", "gpt-4o-mini")


def main() -> None:
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": os.environ.get("OTEL_SERVICE_NAME", "otel-app-example")}
        )
    )
    # The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT (default http://localhost:4318).
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("otel-app-example")
    client = OpenAI(
        base_url=PROXY, api_key=os.environ.get("OPENAI_API_KEY", "sk-mock"), max_retries=0
    )

    with tracer.start_as_current_span(
        "invoke_agent researcher",
        kind=trace.SpanKind.INTERNAL,
        attributes={
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "researcher",
            "gen_ai.provider.name": "openai",
        },
    ) as agent_span:
        # W3C trace context of the active span, so the proxy's span becomes its child; the
        # agent span is ours, so the proxy records none.
        headers = {
            "x-llmtap-agent": "researcher",
            "x-llmtap-agent-span": format(agent_span.get_span_context().span_id, "016x"),
        }
        propagate.inject(headers)
        reply = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Name one use of tracing."}],
            extra_headers=headers,
        )
        context = agent_span.get_span_context()

    provider.shutdown()  # flushes the app's spans to the collector
    print(
        json.dumps(
            {
                "trace_id": format(context.trace_id, "032x"),
                "span_id": format(context.span_id, "016x"),
                "answer": reply.choices[0].message.content,
            }
        )
    )


if __name__ == "__main__":
    main()
