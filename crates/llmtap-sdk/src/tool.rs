//! Tools: `execute_tool {name}` spans (INTERNAL) with `gen_ai.tool.*` attributes; arguments and
//! results are content, so they follow the capture policy (off → not recorded; on → redacted and
//! cut to the content budget at a JSON value boundary).

use llmtap_core::capture::CapturePolicy;
use llmtap_core::semconv;
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanContext, SpanKind, Status, Tracer as _};
use opentelemetry_sdk::trace::Span as SdkSpan;
use serde_json::Value;

use crate::agent::{AgentBuilder, current_agent};
use crate::handle::AgentHandle;
use crate::parent::Parent;
use crate::telemetry::Telemetry;

/// A tool call of the ambient agent's telemetry (or the global one), a child of the ambient
/// context: the current agent, or a `tracing` span entered inside it.
pub fn tool(name: impl Into<String>) -> ToolBuilder {
    let telemetry = current_agent()
        .map(|a| a.telemetry().clone())
        .unwrap_or_else(Telemetry::global);
    ToolBuilder::new(telemetry, name.into())
}

impl AgentHandle {
    /// A tool call of this agent.
    pub fn tool(&self, name: impl Into<String>) -> ToolBuilder {
        ToolBuilder::new(self.telemetry().clone(), name.into()).parent(self)
    }
}

/// Configures a tool call before its span starts; the parent defaults to the ambient context.
#[derive(Debug)]
#[must_use = "a tool call is recorded only once started"]
pub struct ToolBuilder {
    telemetry: Telemetry,
    name: String,
    call_id: Option<String>,
    tool_type: Option<String>,
    description: Option<String>,
    arguments: Option<Value>,
    attributes: Vec<KeyValue>,
    parent: Option<Parent>,
}

impl ToolBuilder {
    pub(crate) fn new(telemetry: Telemetry, name: String) -> Self {
        Self {
            telemetry,
            name,
            call_id: None,
            tool_type: None,
            description: None,
            arguments: None,
            attributes: Vec::new(),
            parent: None,
        }
    }

    /// `gen_ai.tool.call.id`: the id the model gave the call (`call_abc...`).
    pub fn call_id(mut self, id: impl Into<String>) -> Self {
        self.call_id = Some(id.into());
        self
    }

    /// `gen_ai.tool.type`: `function`, `extension` or `datastore`.
    pub fn tool_type(mut self, tool_type: impl Into<String>) -> Self {
        self.tool_type = Some(tool_type.into());
        self
    }

    /// `gen_ai.tool.description`.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// `gen_ai.tool.call.arguments` (content: recorded only when capture is on).
    pub fn arguments(mut self, arguments: &Value) -> Self {
        self.arguments = Some(arguments.clone());
        self
    }

    /// Arguments as the model sent them (a JSON string); kept as a string if it is not JSON.
    pub fn arguments_json(mut self, arguments: &str) -> Self {
        self.arguments = Some(
            serde_json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.into())),
        );
        self
    }

    /// Any other attribute, recorded as given.
    pub fn attribute(mut self, kv: KeyValue) -> Self {
        self.attributes.push(kv);
        self
    }

    /// The parent instead of the ambient context.
    pub fn parent(mut self, parent: impl Into<Parent>) -> Self {
        self.parent = Some(parent.into());
        self
    }

    /// Starts the `execute_tool {name}` span.
    pub fn start(self) -> ToolSpan {
        let parent = self.parent.unwrap_or_else(Parent::current);
        let agent = parent.agent().cloned();
        let policy = self.telemetry.policy();
        let mut truncated = false;

        // Name, call id and description often come from the model's own tool call: redacted
        // like every other captured string.
        let redact = |s: String| policy.redactor.redact(&s).into_owned();
        let name = redact(self.name);
        let mut attrs = Vec::with_capacity(8 + self.attributes.len());
        attrs.push(KeyValue::new(
            semconv::GEN_AI_OPERATION_NAME,
            semconv::operation::EXECUTE_TOOL,
        ));
        attrs.push(KeyValue::new(semconv::GEN_AI_TOOL_NAME, name.clone()));
        for (key, value) in [
            (semconv::GEN_AI_TOOL_CALL_ID, self.call_id.map(redact)),
            (semconv::GEN_AI_TOOL_TYPE, self.tool_type),
            (
                semconv::GEN_AI_TOOL_DESCRIPTION,
                self.description.map(redact),
            ),
            // The agent that runs the tool, so the tool span names it on its own.
            (
                semconv::GEN_AI_AGENT_NAME,
                agent.as_ref().map(|a| a.name().to_owned()),
            ),
            (
                semconv::GEN_AI_AGENT_ID,
                agent.as_ref().and_then(|a| a.id().map(str::to_owned)),
            ),
            (
                semconv::GEN_AI_CONVERSATION_ID,
                agent
                    .as_ref()
                    .and_then(|a| a.conversation_id().map(str::to_owned)),
            ),
        ] {
            if let Some(v) = value {
                attrs.push(KeyValue::new(key, v));
            }
        }
        if let Some(args) = &self.arguments
            && let Some((text, cut)) = capture(policy, args)
        {
            truncated |= cut;
            attrs.push(KeyValue::new(semconv::GEN_AI_TOOL_CALL_ARGUMENTS, text));
        }
        attrs.extend(self.attributes);

        let tracer = self.telemetry.tracer();
        let span = tracer
            .span_builder(semconv::tool_span_name(&name))
            .with_kind(SpanKind::Internal)
            .with_attributes(attrs)
            .start_with_context(tracer, &parent.otel_context());
        ToolSpan {
            span_context: span.span_context().clone(),
            span: Some(span),
            agent,
            telemetry: self.telemetry,
            error: None,
            truncated,
        }
    }
}

/// A running tool call; its span ends on [`end`](Self::end) or drop.
#[derive(Debug)]
pub struct ToolSpan {
    span: Option<SdkSpan>,
    span_context: SpanContext,
    agent: Option<AgentHandle>,
    telemetry: Telemetry,
    error: Option<String>,
    truncated: bool,
}

impl ToolSpan {
    /// `gen_ai.tool.call.result` (content: recorded only when capture is on).
    pub fn set_result(&mut self, result: &Value) {
        let Some((text, cut)) = capture(self.telemetry.policy(), result) else {
            return;
        };
        self.truncated |= cut;
        if let Some(span) = self.span.as_mut() {
            span.set_attribute(KeyValue::new(semconv::GEN_AI_TOOL_CALL_RESULT, text));
        }
    }

    /// Marks the call failed: status Error and a low-cardinality `error.type`.
    pub fn set_error(&mut self, error_type: impl Into<String>) {
        self.error = Some(error_type.into());
    }

    /// Records any attribute now.
    pub fn set_attribute(&mut self, kv: KeyValue) {
        if let Some(span) = self.span.as_mut() {
            span.set_attribute(kv);
        }
    }

    /// This tool call as a parent (a model call or sub-agent made by the tool).
    pub fn as_parent(&self) -> Parent {
        Parent::from_span_context(self.span_context.clone())
            .with_agent(self.agent.clone())
            .with_telemetry(self.telemetry.clone())
    }

    /// A sub-agent started by this tool (a hand-off): parented to the tool span, its usage
    /// counted in the calling agent's totals.
    pub fn agent(&self, name: impl Into<String>) -> AgentBuilder {
        AgentBuilder::new(self.telemetry.clone(), name.into()).parent(self.as_parent())
    }

    /// Ends the span. Same as dropping, but explicit.
    pub fn end(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        let Some(mut span) = self.span.take() else {
            return;
        };
        if self.truncated {
            span.set_attribute(KeyValue::new(semconv::LLMTAP_CAPTURE_TRUNCATED, true));
        }
        if let Some(error) = self.error.take() {
            span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, error.clone()));
            span.set_status(Status::error(error));
        }
        span.end();
    }
}

impl From<&ToolSpan> for Parent {
    fn from(tool: &ToolSpan) -> Self {
        tool.as_parent()
    }
}

impl Drop for ToolSpan {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Redacted, budgeted JSON text of `value`, or `None` when content capture is off.
fn capture(policy: &CapturePolicy, value: &Value) -> Option<(String, bool)> {
    if !policy.content {
        return None;
    }
    Some(policy.budgeted_json(value.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmtap_core::capture::CapturePolicy;

    #[test]
    fn capture_follows_policy() {
        let v = serde_json::json!({"q": "mail bob@example.com", "n": 1});
        assert!(capture(&CapturePolicy::no_content(), &v).is_none());
        let (text, cut) = capture(&CapturePolicy::default(), &v).unwrap();
        assert!(!cut);
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            serde_json::json!({"q": "mail [REDACTED:email]", "n": 1})
        );
        let small = CapturePolicy {
            max_content_bytes: 64,
            ..CapturePolicy::default()
        };
        let big = serde_json::json!({"text": "x".repeat(500)});
        let (text, cut) = capture(&small, &big).unwrap();
        assert!(cut && text.len() <= 64, "{text}");
        assert!(serde_json::from_str::<Value>(&text).is_ok());
    }
}
