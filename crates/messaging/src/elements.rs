//! The messaging elements: Evaluate inbound message, Start a Conversation and Start chatbot
//! (Answers). Each gets the store it keeps conversations, sessions and the chatbot registry
//! in, and the outbound client for chatbot webhooks, when it is registered.

mod evaluate_inbound;
mod start_chatbot;
mod start_conversation;

pub use start_chatbot::{SenderChange, update_chatbot_senders};

use flowhost_engine::element::ElementTypes;
use flowhost_outbound::HttpClient;
use flowhost_store::StateStore;
use std::sync::Arc;

/// Registers `evaluate-inbound`, `start-conversation` and `start-chatbot`.
pub fn register(types: &mut ElementTypes, store: Arc<dyn StateStore>, client: HttpClient) {
    types.register(
        "evaluate-inbound",
        Arc::new(evaluate_inbound::EvaluateInboundType),
    );
    types.register(
        "start-conversation",
        Arc::new(start_conversation::StartConversationType::new(
            store.clone(),
        )),
    );
    types.register(
        "start-chatbot",
        Arc::new(start_chatbot::StartChatbotType::new(client, store)),
    );
}
