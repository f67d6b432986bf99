//! Turns and pairs: which messages of a thread become one question/answer pattern.
//!
//! A *turn* is a maximal run of consecutive messages of one role (`Role::Other` messages are
//! dropped). A message with no text (an image-only question, an empty or marker-only answer)
//! and an assistant message with a `refusal` part form a *barrier* turn: it ends the turn before
//! it and pairs with nothing. So a refused or empty answer leaves its question unpaired instead
//! of gluing it to the next question, and an image-only question never merges the answers
//! around it. Barrier messages are not listed in any pattern's `message_ids`.

use super::text::message_text;
use crate::model::{Message, Role};
use std::collections::HashMap;

/// Consecutive messages of one role with their joined text (never empty).
#[derive(Debug, Clone, PartialEq)]
pub struct Turn<'a> {
    pub role: Role,
    pub messages: Vec<&'a Message>,
    /// The messages' texts joined by a blank line.
    pub text: String,
    /// No text to pair: a refused or empty answer, or an image-only question. It separates
    /// the turns around it and pairs with nothing.
    pub barrier: bool,
}

impl Turn<'_> {
    /// First non-null `assistant_id` among the turn's messages.
    pub fn assistant_id(&self) -> Option<&str> {
        self.messages.iter().find_map(|m| m.assistant_id.as_deref())
    }

    /// First non-null `run_id` among the turn's messages.
    pub fn run_id(&self) -> Option<&str> {
        self.messages.iter().find_map(|m| m.run_id.as_deref())
    }

    /// Every distinct `run_id` of the turn, in order (one turn may span several runs).
    pub fn run_ids(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for id in self.messages.iter().filter_map(|m| m.run_id.as_deref()) {
            if !out.contains(&id) {
                out.push(id);
            }
        }
        out
    }

    /// `created_at` of the turn's first message.
    pub fn created_at(&self) -> i64 {
        self.messages.first().map_or(0, |m| m.created_at)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.messages.iter().map(|m| m.id.as_str())
    }
}

/// A user turn immediately followed by an assistant turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair<'a> {
    pub user: Turn<'a>,
    pub assistant: Turn<'a>,
}

impl Pair<'_> {
    /// All message ids of the pair, user ones first, each in thread order.
    pub fn message_ids(&self) -> Vec<&str> {
        self.user.ids().chain(self.assistant.ids()).collect()
    }
}

/// Messages in chronological order. The source hands them oldest first; only if `created_at`
/// disagrees are they stable-sorted (equal seconds keep the source's order, which is finer).
pub fn chronological(messages: &[Message]) -> Vec<&Message> {
    let mut out: Vec<&Message> = messages.iter().collect();
    if !out.is_sorted_by_key(|m| m.created_at) {
        out.sort_by_key(|m| m.created_at);
    }
    out
}

/// Groups a thread's messages into turns (see the module header for what is skipped).
pub fn turns<'a>(messages: &'a [Message], file_names: &HashMap<String, String>) -> Vec<Turn<'a>> {
    let mut out: Vec<Turn<'a>> = Vec::new();
    for msg in chronological(messages) {
        if !matches!(msg.role, Role::User | Role::Assistant) {
            continue;
        }
        let text = message_text(msg, file_names);
        let refused = msg.role == Role::Assistant && msg.content.iter().any(|p| p.kind == "refusal");
        if text.is_empty() || refused {
            // A refusal is never an answer; an empty one, or an image-only question, is not a
            // turn to pair either, but it still ends the turn before it.
            match out.last_mut() {
                Some(turn) if turn.role == msg.role && turn.barrier => turn.messages.push(msg),
                _ => out.push(Turn { role: msg.role, messages: vec![msg], text: String::new(), barrier: true }),
            }
            continue;
        }
        match out.last_mut() {
            Some(turn) if turn.role == msg.role && !turn.barrier => {
                turn.text.push_str("\n\n");
                turn.text.push_str(&text);
                turn.messages.push(msg);
            }
            _ => out.push(Turn { role: msg.role, messages: vec![msg], text, barrier: false }),
        }
    }
    out
}

/// Every user turn directly followed by an assistant turn. A leading assistant greeting and a
/// final unanswered question pair with nothing and are dropped.
pub fn pairs(turns: Vec<Turn<'_>>) -> Vec<Pair<'_>> {
    let mut out = Vec::new();
    let mut it = turns.into_iter().peekable();
    while let Some(turn) = it.next() {
        if turn.role != Role::User || turn.barrier {
            continue;
        }
        if it.peek().is_some_and(|next| next.role == Role::Assistant && !next.barrier)
            && let Some(assistant) = it.next()
        {
            out.push(Pair { user: turn, assistant });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ContentPart, FileRef, TextContent};

    fn msg(id: &str, at: i64, role: Role, text: Option<&str>) -> Message {
        let content = match text {
            Some(t) => vec![ContentPart {
                kind: "text".into(),
                text: Some(TextContent { value: t.into(), annotations: vec![] }),
                image_file: None,
            }],
            None => vec![ContentPart {
                kind: "image_file".into(),
                text: None,
                image_file: Some(FileRef { file_id: "file-img".into() }),
            }],
        };
        Message {
            id: id.into(),
            created_at: at,
            thread_id: "thread_1".into(),
            role,
            content,
            assistant_id: None,
            run_id: None,
            attachments: vec![],
            metadata: Default::default(),
            status: None,
        }
    }

    fn pair_of(messages: &[Message]) -> Vec<(String, String, Vec<String>)> {
        pairs(turns(messages, &HashMap::new()))
            .into_iter()
            .map(|p| {
                let ids = p.message_ids().into_iter().map(str::to_string).collect();
                (p.user.text, p.assistant.text, ids)
            })
            .collect()
    }

    use Role::{Assistant as A, Other as O, User as U};

    #[test]
    fn consecutive_messages_of_one_role_form_one_turn() {
        let m = [
            msg("u1", 1, U, Some("Hi")),
            msg("u2", 2, U, Some("How?")),
            msg("a1", 3, A, Some("Like")),
            msg("a2", 4, A, Some("this")),
        ];
        assert_eq!(
            pair_of(&m),
            vec![(
                "Hi\n\nHow?".into(),
                "Like\n\nthis".into(),
                vec!["u1".into(), "u2".into(), "a1".into(), "a2".into()]
            )]
        );
    }

    #[test]
    fn greeting_and_unanswered_question_make_no_pattern() {
        let m = [
            msg("a0", 1, A, Some("Hello!")),
            msg("u1", 2, U, Some("Q1")),
            msg("a1", 3, A, Some("A1")),
            msg("u2", 4, U, Some("Q2 unanswered")),
        ];
        let p = pair_of(&m);
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].0.as_str(), p[0].1.as_str()), ("Q1", "A1"));
        assert!(pair_of(&[msg("a0", 1, A, Some("Hello!"))]).is_empty());
        assert!(pair_of(&[msg("u0", 1, U, Some("anyone?"))]).is_empty());
    }

    /// Content parts of MessageObject (openai/openai-openapi openapi.yaml): `image_file`,
    /// `image_url`, `text`, `refusal`. None of them may glue two questions together.
    #[test]
    fn image_only_and_empty_messages_end_the_turn_before_them() {
        // user, [image-only user], assistant: the image-only turn ends the pair before it.
        let m =
            [msg("u1", 1, U, Some("What is this?")), msg("u2", 2, U, None), msg("a1", 3, A, Some("A cat."))];
        assert!(pair_of(&m).is_empty());
        // An image-only question between two answers does not merge them.
        let m = [
            msg("u1", 1, U, Some("What is 2 + 2?")),
            msg("a1", 2, A, Some("4.")),
            msg("u2", 3, U, None),
            msg("a2", 4, A, Some("A cat on a keyboard.")),
        ];
        assert_eq!(pair_of(&m), vec![("What is 2 + 2?".into(), "4.".into(), vec!["u1".into(), "a1".into()])]);
        // An empty answer leaves its question unanswered: B alone pairs with "ok".
        let m = [
            msg("u1", 1, U, Some("A")),
            msg("a0", 2, A, Some("  \n")),
            msg("u2", 3, U, Some("B")),
            msg("a1", 4, A, Some("ok")),
        ];
        assert_eq!(pair_of(&m), vec![("B".into(), "ok".into(), vec!["u2".into(), "a1".into()])]);
        assert!(pair_of(&[msg("u1", 1, U, None), msg("a1", 2, A, Some("Nice"))]).is_empty());
    }

    #[test]
    fn a_refusal_is_no_answer_and_joins_nothing() {
        let mut refusal = msg("a0", 2, A, None);
        refusal.content = vec![ContentPart { kind: "refusal".into(), ..Default::default() }];
        let m = [
            msg("u1", 1, U, Some("How do I pick a lock?")),
            refusal,
            msg("u2", 3, U, Some("What is the capital of Australia?")),
            msg("a1", 4, A, Some("Canberra.")),
        ];
        assert_eq!(
            pair_of(&m),
            vec![("What is the capital of Australia?".into(), "Canberra.".into(), vec!["u2".into(), "a1".into()])]
        );
    }

    #[test]
    fn other_roles_are_ignored() {
        let m =
            [msg("u1", 1, U, Some("Q")), msg("s1", 2, O, Some("system note")), msg("a1", 3, A, Some("A"))];
        assert_eq!(pair_of(&m), vec![("Q".into(), "A".into(), vec!["u1".into(), "a1".into()])]);
    }

    #[test]
    fn several_pairs_in_order() {
        let m = [
            msg("u1", 1, U, Some("Q1")),
            msg("a1", 2, A, Some("A1")),
            msg("u2", 3, U, Some("Q2")),
            msg("a2", 4, A, Some("A2")),
        ];
        let p = pair_of(&m);
        assert_eq!(p.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(), ["Q1", "Q2"]);
    }

    #[test]
    fn out_of_order_messages_are_stably_sorted() {
        // Same second keeps source order; a later-listed earlier message moves up.
        let m = [msg("a1", 5, A, Some("A")), msg("u1", 3, U, Some("Q")), msg("u2", 3, U, Some("more"))];
        assert_eq!(
            pair_of(&m),
            vec![("Q\n\nmore".into(), "A".into(), vec!["u1".into(), "u2".into(), "a1".into()])]
        );
        // Already ordered (ties included): untouched.
        let m = [msg("u1", 3, U, Some("Q")), msg("a1", 3, A, Some("A"))];
        assert_eq!(pair_of(&m).len(), 1);
    }

    #[test]
    fn turn_ids_and_runs() {
        let mut a1 = msg("a1", 2, A, Some("x"));
        a1.run_id = Some("run_1".into());
        let mut a2 = msg("a2", 3, A, Some("y"));
        a2.run_id = Some("run_2".into());
        a2.assistant_id = Some("asst_2".into());
        let mut a3 = msg("a3", 4, A, Some("z"));
        a3.run_id = Some("run_1".into());
        let m = [msg("u1", 1, U, Some("q")), a1, a2, a3];
        let p = pairs(turns(&m, &HashMap::new()));
        assert_eq!(p[0].assistant.run_id(), Some("run_1"));
        assert_eq!(p[0].assistant.run_ids(), ["run_1", "run_2"]);
        assert_eq!(p[0].assistant.assistant_id(), Some("asst_2"));
        assert_eq!(p[0].user.created_at(), 1);
    }
}
