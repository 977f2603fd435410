use cairn_core::openai::FunctionCall;
use serde_json::json;

use super::*;

fn agent(limits: Value) -> AgentSpec {
    serde_json::from_value(json!({"name": "a", "model": "m", "limits": limits})).unwrap()
}

fn call(id: &str, name: &str, args: &str) -> ToolCall {
    ToolCall {
        id: id.into(),
        kind: "function".into(),
        function: FunctionCall { name: name.into(), arguments: args.into() },
    }
}

/// A journal written step by step, as a run writes it.
#[derive(Default)]
struct Journal(Vec<RunStep>);

impl Journal {
    fn push(&mut self, kind: StepKind, payload: Value) -> &mut Self {
        let seq = self.0.len() as u64 + 1;
        self.0.push(RunStep { run_id: "run_1".into(), seq, kind, payload, created_at_ms: 0 });
        self
    }

    fn model(&mut self, text: Option<&str>, calls: Vec<ToolCall>, cost: f64, tools: bool) -> &mut Self {
        let message = ChatMessage {
            content: text.map(|t| cairn_core::openai::MessageContent::Text(t.into())),
            tool_calls: (!calls.is_empty()).then_some(calls),
            ..ChatMessage::text(ChatRole::Assistant, "")
        };
        let final_for = (!tools).then_some(Cap::Steps);
        let out = ModelOutput {
            message,
            input_tokens: 100,
            output_tokens: 10,
            cost_usd: cost,
            tools_offered: tools,
            final_for,
        };
        self.push(StepKind::ModelOutput, payload(&out))
    }

    fn started(&mut self, id: &str) -> &mut Self {
        let s = ToolStarted { call_id: id.into(), idempotency_key: idempotency_key("run_1", 1, id) };
        self.push(StepKind::ToolStarted, payload(&s))
    }

    fn result(&mut self, id: &str, content: &str) -> &mut Self {
        let r = ToolResult { call_id: id.into(), content: content.into(), is_error: false };
        self.push(StepKind::ToolResult, payload(&r))
    }

    fn next(&self, spec: &AgentSpec) -> Next {
        Replay::of(&self.0).unwrap().next(spec)
    }
}

#[test]
fn a_run_resumes_exactly_where_its_journal_stops() {
    let spec = agent(json!({}));
    let mut j = Journal::default();
    assert_eq!(j.next(&spec), Next::CallModel { final_call: None }, "a new run calls the model");
    let (a, b) = (call("c1", "search", "{\"q\":\"x\"}"), call("c2", "fetch", "{}"));
    j.model(None, vec![a.clone(), b.clone()], 0.01, true);
    assert_eq!(j.next(&spec), Next::CallTools(vec![a.clone(), b.clone()]), "both calls, none started");
    j.started("c1");
    assert_eq!(j.next(&spec), Next::Resolve(vec![a.clone()]), "a call started and never finished is a question");
    j.result("c1", "found it");
    assert_eq!(j.next(&spec), Next::CallTools(vec![b.clone()]), "finished calls are never made again");
    j.started("c2").result("c2", "page").result("c2", "page again");
    assert_eq!(j.next(&spec), Next::CallModel { final_call: None });
    j.model(Some("Here you are."), vec![], 0.01, true);
    assert_eq!(j.next(&spec), Next::Finish { answer: Some("Here you are.".into()), cap: None });

    // What the model sees next: its outputs and one tool message per call, in order.
    let r = Replay::of(&j.0).unwrap();
    let roles: Vec<ChatRole> = r.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [ChatRole::Assistant, ChatRole::Tool, ChatRole::Tool, ChatRole::Assistant]);
    assert_eq!(r.messages[2].tool_call_id.as_deref(), Some("c2"));
    assert_eq!((r.steps, r.tool_calls, r.input_tokens), (2, 2, 200));
    assert!((r.cost_usd - 0.02).abs() < 1e-12);
}

#[test]
fn caps_end_runs_gracefully_with_one_last_call_without_tools() {
    let spec = agent(json!({"max_steps": 2}));
    let mut j = Journal::default();
    j.model(None, vec![call("c1", "search", "{\"q\":1}")], 0.0, true).started("c1").result("c1", "r");
    j.model(None, vec![call("c2", "search", "{\"q\":2}")], 0.0, true);
    assert_eq!(j.next(&spec), Next::CallModel { final_call: Some(Cap::Steps) });
    let r = Replay::of(&j.0).unwrap();
    assert_eq!(r.unfinished(), vec![call("c2", "search", "{\"q\":2}")], "to be answered as not run");
    j.model(Some("Best I can say."), vec![], 0.0, false);
    assert_eq!(j.next(&spec), Next::Finish { answer: Some("Best I can say.".into()), cap: Some(Cap::Steps) });
}

#[test]
fn the_same_call_over_and_over_is_a_loop() {
    let spec = agent(json!({"max_repeats": 3, "max_steps": 50}));
    let mut j = Journal::default();
    for i in 0..3 {
        let id = format!("c{i}");
        j.model(None, vec![call(&id, "search", "{\"q\":\"same\"}")], 0.0, true);
        if i < 2 {
            j.started(&id).result(&id, "nothing");
        }
    }
    assert_eq!(j.next(&spec), Next::CallModel { final_call: Some(Cap::Loop) });
    // Different arguments are not a loop.
    let mut k = Journal::default();
    for i in 0..3 {
        let id = format!("c{i}");
        k.model(None, vec![call(&id, "search", &format!("{{\"q\":{i}}}"))], 0.0, true);
        k.started(&id).result(&id, "r");
    }
    assert_eq!(k.next(&spec), Next::CallModel { final_call: None });
}

#[test]
fn the_cost_cap_ends_without_another_call() {
    let spec = agent(json!({"max_cost_usd": 0.05}));
    let mut j = Journal::default();
    j.model(None, vec![call("c1", "search", "{}")], 0.06, true);
    assert_eq!(j.next(&spec), Next::Finish { answer: None, cap: Some(Cap::Cost) });
}

#[test]
fn an_ended_journal_stays_ended_and_a_corrupt_one_is_an_error() {
    let spec = agent(json!({}));
    let mut j = Journal::default();
    j.model(Some("hi"), vec![], 0.0, true);
    j.push(StepKind::Ended, payload(&Ended { state: RunState::Cancelled, reason: Some("asked".into()), answer: None }));
    assert_eq!(j.next(&spec), Next::Ended(RunState::Cancelled));
    let mut bad = Journal::default();
    bad.push(StepKind::ToolResult, json!({"call": 1}));
    let err = Replay::of(&bad.0).unwrap_err();
    assert_eq!((err.seq, err.kind), (1, StepKind::ToolResult));
}
