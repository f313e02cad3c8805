//! `start-chatbot`: hands the participant to an Answers chatbot and brings them back when
//! the session ends.
//!
//! ```json
//! {"sender": "447491163443",
//!  "message": "{{LastInboundMessage.text}}", "context": "Order {{order_id}}",
//!  "conditions": ["closed", "expired", "agent-redirect-failed"]}
//! ```
//!
//! - `sender` (optional): the chatbot sender. Left out, it is the sender of the
//!   `evaluate-inbound` element before it on the same branch; given, it must equal that
//!   sender (`flowhost flows update-chatbot-sender` fixes it). Checked when the flow is
//!   activated, with Answers being enabled and an active chatbot on that channel and sender;
//!   a draft gets the same findings as warnings.
//! - `message` (default `{{LastInboundMessage.text}}`) and optional `context` (appended on a
//!   new line): what the chatbot receives first.
//! - `conditions`: the end reasons that get their own exit ([`EndReason`]); every other
//!   end leaves by `default`.
//!
//! Its analytics count, besides its exits, the `sessions` started and every end reason
//! (`closed`, `expired`, …) whichever exit it left by.
//!
//! The chatbot is whichever active chatbot is on the channel and sender when the participant
//! arrives. The participant waits durably while the session runs; the session's timeout
//! moves with every message.

use crate::answers::{Answers, EndReason};
use crate::{Channel, InboundMessage, LAST_INBOUND_MESSAGE};
use flowhost_engine::element::{
    BoxFuture, Element, ElementType, StepInput, StepOutcome, StepResult, parse_config,
};
use flowhost_flow::template::{Scope, Template};
use flowhost_flow::{ElementDef, FlowDef, Issue};
use flowhost_outbound::HttpClient;
use flowhost_store::{ElementState, StateStore};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

pub(super) struct StartChatbotType {
    answers: Answers,
    /// The chatbot registry, the account switch and the sessions.
    store: Arc<dyn StateStore>,
}

impl StartChatbotType {
    pub(super) fn new(client: HttpClient, store: Arc<dyn StateStore>) -> Self {
        StartChatbotType {
            answers: Answers::new(client),
            store,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Taken from the evaluate-inbound element before it when left out.
    #[serde(default)]
    sender: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    context: Option<String>,
    #[serde(default)]
    conditions: Vec<String>,
}

/// What the element keeps while the participant talks to the bot.
#[derive(Serialize, Deserialize)]
struct InSession {
    session: String,
}

struct StartChatbot {
    answers: Answers,
    store: Arc<dyn StateStore>,
    message: Template,
    context: Option<Template>,
    conditions: BTreeSet<EndReason>,
}

const DEFAULT_EXIT: &str = "default";

/// Counted in the element's analytics when a chatbot session starts.
const SESSIONS: &str = "sessions";

impl ElementType for StartChatbotType {
    fn activation_issues<'a>(&'a self, flow: &'a FlowDef) -> BoxFuture<'a, Vec<Issue>> {
        Box::pin(activation_issues(flow, &*self.store))
    }

    fn build(&self, def: &ElementDef) -> Result<Box<dyn Element>, Vec<Issue>> {
        let config: Config = parse_config(def)?;
        let mut issues = Vec::new();
        if config
            .sender
            .as_deref()
            .is_some_and(|s| s.trim().is_empty())
        {
            issues.push(Issue::new(
                "config.sender",
                "is empty; leave it out to take the sender of the evaluate-inbound element before it",
            ));
        }
        let mut template = |text: &str, path: &str| match Template::parse(text) {
            Ok(t) => Some(t),
            Err(e) => {
                issues.push(Issue::new(path, e));
                None
            }
        };
        let message = template(
            config
                .message
                .as_deref()
                .unwrap_or("{{LastInboundMessage.text}}"),
            "config.message",
        );
        let context = config
            .context
            .as_deref()
            .and_then(|c| template(c, "config.context"));
        let mut conditions = BTreeSet::new();
        for (i, c) in config.conditions.iter().enumerate() {
            match EndReason::parse(c) {
                Some(r) if conditions.insert(r) => {}
                Some(_) => issues.push(Issue::new(
                    format!("config.conditions[{i}]"),
                    format!("{c:?} is listed twice"),
                )),
                None if EndReason::from_bot(c).is_some() => issues.push(Issue::new(
                    format!("config.conditions[{i}]"),
                    format!(
                        "{c:?} is what a bot answers; the session end it makes, and its exit, is {:?}",
                        EndReason::from_bot(c).map(EndReason::as_str).unwrap_or_default()
                    ),
                )),
                None => issues.push(Issue::new(
                    format!("config.conditions[{i}]"),
                    format!(
                        "{c:?} is not a session end; choose from {}",
                        EndReason::ALL.map(EndReason::as_str).join(", ")
                    ),
                )),
            }
        }
        match message {
            Some(message) if issues.is_empty() => Ok(Box::new(StartChatbot {
                answers: self.answers.clone(),
                store: self.store.clone(),
                message,
                context,
                conditions,
            })),
            _ => Err(issues),
        }
    }
}

impl StartChatbot {
    fn end(&self, reason: EndReason, session: Option<&str>, error: Option<String>) -> StepResult {
        let exit = if self.conditions.contains(&reason) {
            reason.as_str()
        } else {
            DEFAULT_EXIT
        };
        let mut r = StepResult::exit(exit);
        // Every end reason is counted, whichever exit it leaves by.
        r.tally.push(reason.as_str().to_owned());
        let mut data = serde_json::json!({ "reason": reason });
        if let Some(s) = session {
            data["session"] = s.into();
        }
        if let Some(e) = error {
            data["error"] = e.into();
        }
        r.data = Some(data);
        r
    }

    async fn start(&self, input: &StepInput<'_>) -> Result<StepResult, flowhost_store::StoreError> {
        let not_started = |why: String| Ok(self.end(EndReason::SessionNotStarted, None, Some(why)));
        let Some(last) = input
            .variables
            .get(LAST_INBOUND_MESSAGE)
            .and_then(|v| serde_json::from_value::<InboundMessage>(v.clone()).ok())
        else {
            return not_started(
                "no LastInboundMessage: the session starts with the person's message from an evaluate-inbound element".into(),
            );
        };
        if !Answers::enabled(&*self.store).await? {
            return not_started("Answers is not enabled for the account".into());
        }
        let Some(bot) = Answers::active_chatbot(&*self.store, last.channel, &last.to).await? else {
            return not_started(format!(
                "no active chatbot on {} sender {}",
                last.channel, last.to
            ));
        };
        let scope = Scope::new(input.variables, input.person);
        let mut message = match self.message.render(&scope) {
            Ok(m) => m,
            Err(e) => return not_started(format!("message: {e}")),
        };
        if let Some(context) = &self.context {
            match context.render(&scope) {
                Ok(c) => {
                    message.push('\n');
                    message.push_str(&c);
                }
                Err(e) => return not_started(format!("context: {e}")),
            }
        }
        let (session, woken, failure) = self
            .answers
            .start_session(
                &*self.store,
                &bot,
                input.participant_id,
                &last.from,
                &message,
                input.now,
            )
            .await?;
        if let Some(reason) = session.ended {
            let mut r = self.end(reason, Some(&session.id), failure);
            r.tally.push(SESSIONS.to_owned());
            r.wake = woken;
            return Ok(r);
        }
        let mut r = StepResult::new(StepOutcome::WaitFor {
            key: session.wait_key(),
            until: Some(input.now + session.timeout_ms),
        });
        r.state = Some(ElementState::new(
            "chatbot",
            &InSession {
                session: session.id.clone(),
            },
        ));
        r.data = Some(serde_json::json!({"session": session.id, "chatbot": bot.id}));
        r.tally.push(SESSIONS.to_owned());
        r.wake = woken;
        Ok(r)
    }

    async fn resume(
        &self,
        input: &StepInput<'_>,
    ) -> Result<StepResult, flowhost_store::StoreError> {
        let session_id = input
            .state
            .and_then(|s| s.data_as::<InSession>())
            .map(|s| s.session)
            .unwrap_or_default();
        if let Some(reason) = input
            .event
            .and_then(|e| e["end"].as_str())
            .and_then(EndReason::parse)
        {
            return Ok(self.end(reason, Some(&session_id), None));
        }
        // Woken by time: the session's deadline passed without a message.
        let session = Answers::session(&*self.store, &session_id).await?;
        let reason = match session.and_then(|s| s.ended) {
            Some(reason) => reason,
            None => {
                Answers::end_session(&*self.store, &session_id, EndReason::Expired, input.now)
                    .await?;
                EndReason::Expired
            }
        };
        Ok(self.end(reason, Some(&session_id), None))
    }
}

impl Element for StartChatbot {
    fn exits(&self) -> Vec<String> {
        self.conditions
            .iter()
            .map(|c| c.as_str().to_owned())
            .chain([DEFAULT_EXIT.to_owned()])
            .collect()
    }

    fn run<'a>(&'a self, input: StepInput<'a>) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            let result = if input.resumed {
                self.resume(&input).await
            } else {
                self.start(&input).await
            };
            result.unwrap_or_else(|e| {
                self.end(EndReason::SessionNotStarted, None, Some(e.to_string()))
            })
        })
    }
}

/// Checks made when a flow is activated: Answers is enabled; every `start-chatbot` comes
/// after an `evaluate-inbound` on the same branch, has that element's sender, and an active
/// text-channel chatbot is on that channel and sender.
/// The flow's elements as a graph, for finding what comes before a chatbot element.
struct Branches<'a> {
    def: &'a FlowDef,
    index: BTreeMap<&'a str, usize>,
}

impl<'a> Branches<'a> {
    fn new(def: &'a FlowDef) -> Self {
        let index = def
            .elements
            .iter()
            .enumerate()
            .map(|(i, e)| (e.id.as_str(), i))
            .collect();
        Branches { def, index }
    }

    fn is_evaluate(&self, i: usize) -> bool {
        self.def.elements[i].kind == "evaluate-inbound"
    }

    /// Elements reachable from `starts` without passing through an evaluate-inbound element.
    fn reach(&self, starts: Vec<usize>) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut queue: VecDeque<usize> = starts.into();
        while let Some(i) = queue.pop_front() {
            if !seen.insert(i) || self.is_evaluate(i) {
                continue;
            }
            for target in self.def.elements[i].exits.values() {
                if let Some(&j) = self.index.get(target.as_str()) {
                    queue.push_back(j);
                }
            }
        }
        seen
    }

    /// Whether element `i` can be reached from an entry point with no evaluate-inbound on
    /// the way.
    fn reached_from_entry(&self, i: usize) -> bool {
        self.reach(
            self.def
                .entry_points
                .iter()
                .filter_map(|e| self.index.get(e.start.as_str()).copied())
                .collect(),
        )
        .contains(&i)
    }

    /// The evaluate-inbound elements whose branch leads to element `i` (none other between),
    /// with their channel and sender.
    fn evaluates_before(&self, i: usize) -> Vec<(usize, Channel, String)> {
        (0..self.def.elements.len())
            .filter(|&j| self.is_evaluate(j))
            .filter(|&j| {
                let next = self.def.elements[j]
                    .exits
                    .values()
                    .filter_map(|t| self.index.get(t.as_str()).copied())
                    .collect();
                self.reach(next).contains(&i)
            })
            .filter_map(|j| {
                let (channel, sender) =
                    super::evaluate_inbound::channel_and_sender(&self.def.elements[j])?;
                Some((j, channel, sender))
            })
            .collect()
    }
}

/// A chatbot sender changed by [`update_chatbot_senders`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SenderChange {
    /// The start-chatbot element.
    pub element: String,
    /// Its sender before.
    pub from: String,
    /// The sender of the evaluate-inbound element before it, now its sender.
    pub to: String,
}

/// "Update chatbot sender": every start-chatbot element whose own sender differs from the
/// evaluate-inbound element before it takes that element's sender. Returns what changed.
pub fn update_chatbot_senders(def: &mut FlowDef) -> Vec<SenderChange> {
    let mut updates = Vec::new();
    {
        let branches = Branches::new(def);
        for (i, el) in def.elements.iter().enumerate() {
            if el.kind != "start-chatbot" {
                continue;
            }
            let Some(own) = el.config.get("sender").and_then(|s| s.as_str()) else {
                continue;
            };
            if let Some((_, _, theirs)) = branches.evaluates_before(i).into_iter().next()
                && crate::sender_key(&theirs) != crate::sender_key(own)
            {
                updates.push((i, own.to_owned(), theirs));
            }
        }
    }
    updates
        .into_iter()
        .map(|(i, from, to)| {
            let el = &mut def.elements[i];
            el.config
                .insert("sender".into(), serde_json::Value::String(to.clone()));
            SenderChange {
                element: el.id.clone(),
                from,
                to,
            }
        })
        .collect()
}

async fn activation_issues(def: &FlowDef, store: &dyn StateStore) -> Vec<Issue> {
    let bots: Vec<(usize, &ElementDef)> = def
        .elements
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == "start-chatbot")
        .collect();
    if bots.is_empty() {
        return Vec::new();
    }
    let mut issues = Vec::new();
    let branches = Branches::new(def);
    let enabled = Answers::enabled(store).await;
    for (i, el) in bots {
        let at = |path: &str| format!("elements[{i}]{path}");
        let name = format!("(element {:?})", el.id);
        match &enabled {
            Ok(true) => {}
            Ok(false) => issues.push(Issue::new(
                at(".type"),
                format!("{name} Answers is not enabled for this account; enable it (flowhost answers enable) before activating the flow"),
            )),
            Err(e) => issues.push(Issue::new(at(".type"), format!("{name} {e}"))),
        }
        if branches.reached_from_entry(i) {
            issues.push(Issue::new(
                at(""),
                format!("{name} can be reached without an evaluate-inbound element before it; the chatbot session starts with the person's message, so put an evaluate-inbound element before it on the same branch"),
            ));
        }
        // Without a sender of its own, the element takes the evaluate-inbound's.
        let own_sender = el.config.get("sender").and_then(|s| s.as_str());
        for (j, channel, evaluate_sender) in branches.evaluates_before(i) {
            if let Some(sender) = own_sender
                && crate::sender_key(&evaluate_sender) != crate::sender_key(sender)
            {
                issues.push(Issue::new(
                    at(".config.sender"),
                    format!(
                        "{name} chatbot sender {sender:?} differs from sender {evaluate_sender:?} of evaluate-inbound element {:?} (elements[{j}]); leave the sender out, or update it (flowhost flows update-chatbot-sender {})",
                        def.elements[j].id, def.id
                    ),
                ));
                continue;
            }
            match Answers::active_chatbot(store, channel, &evaluate_sender).await {
                Ok(Some(_)) => {}
                Ok(None) => issues.push(Issue::new(
                    at(".config.sender"),
                    format!(
                        "{name} no active chatbot on {channel} sender {evaluate_sender:?}; add or start one there (flowhost chatbots add BOT.json)"
                    ),
                )),
                Err(e) => issues.push(Issue::new(at(""), format!("{name} {e}"))),
            }
        }
    }
    issues
}
