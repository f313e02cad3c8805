//! What of the messaging records is done, for retention: each kind, its statuses once done,
//! and the field of its body saying since when (milliseconds).

/// One kind of record that is done after a while.
#[derive(Clone, Copy, Debug)]
pub struct Done {
    /// The record kind.
    pub kind: &'static str,
    /// Its statuses once done: a message still to be sent is not.
    pub statuses: &'static [&'static str],
    /// The body's field holding when it was done.
    pub since: &'static str,
}

/// The message log, except messages still to be sent.
pub const MESSAGES: Done = Done {
    kind: crate::MESSAGE_KIND,
    statuses: &["sent", "failed", ""],
    since: "at",
};

/// Closed agent conversations.
pub const CLOSED_CONVERSATIONS: Done = Done {
    kind: crate::conversations::KIND,
    statuses: &["closed"],
    since: "closedAt",
};

/// Ended chatbot sessions.
pub const ENDED_SESSIONS: Done = Done {
    kind: crate::answers::SESSION_KIND,
    statuses: &["ended"],
    since: "lastActivity",
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answers::{EndReason, Session};
    use crate::conversations::{Conversation, ConversationStatus};
    use crate::{Author, Channel, LoggedMessage};

    /// The time fields retention reads are the ones each kind's body has.
    #[test]
    fn each_kind_has_its_time_field() {
        let message = LoggedMessage {
            id: "m".into(),
            channel: Channel::Sms,
            contact: "+1".into(),
            sender: "s".into(),
            author: Author::Bot,
            by: None,
            text: "hi".into(),
            at: 7,
            sending: None,
        };
        let conversation = Conversation {
            id: "c".into(),
            tag: "t".into(),
            status: ConversationStatus::Closed,
            agent: None,
            channel: Channel::Sms,
            contact: "+1".into(),
            sender: "s".into(),
            person_id: None,
            flow_id: "f".into(),
            participant_id: "p".into(),
            messages: Vec::new(),
            created_at: 1,
            closed_at: Some(7),
        };
        let session = Session {
            id: "s".into(),
            bot_id: "b".into(),
            participant_id: "p".into(),
            channel: Channel::Sms,
            contact: "+1".into(),
            sender: "s".into(),
            ended: Some(EndReason::Closed),
            started_at: 1,
            last_activity: 7,
            timeout_ms: 10,
        };
        for (done, body) in [
            (MESSAGES, serde_json::to_value(&message).unwrap()),
            (
                CLOSED_CONVERSATIONS,
                serde_json::to_value(&conversation).unwrap(),
            ),
            (ENDED_SESSIONS, serde_json::to_value(&session).unwrap()),
        ] {
            assert_eq!(body[done.since], 7, "{}: {body}", done.kind);
        }
        assert!(
            CLOSED_CONVERSATIONS
                .statuses
                .contains(&ConversationStatus::Closed.as_str())
        );
    }
}
