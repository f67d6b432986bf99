//! Questions and what became of them: which messages of a thread become one question/answer
//! pattern, and why the others do not.
//!
//! A *turn* is a maximal run of consecutive messages of one role (`Role::Other` messages are
//! dropped). Two user turns are also split where a run answered nothing: a run of the thread
//! that produced no message (it ended `requires_action`, `failed`, `cancelled`, `expired`, …)
//! and was created between two user messages ends the question before it, so an unanswered
//! question is never glued to the next one.
//!
//! Each user turn with text is a *question*; its fate is decided by the turn after it:
//! - an assistant turn with text: *answered*, and how the answer ended (see [`Ending`]);
//! - an assistant turn holding a `refusal` part: *refused* (a refusal is never an answer);
//! - an assistant turn with no text, another question, or the end of the thread: *unanswered*.
//!
//! A user turn without text (only `image_file` / `image_url` parts) is not a question: it ends
//! the pair before it, the assistant turn after it pairs with nothing, and it is reported by
//! message id. Images inside a turn that has text never split or merge anything.

use super::text::message_text;
use crate::model::{Message, Role, Run};
use std::collections::HashMap;

/// Consecutive messages of one role with their joined text (empty for an image-only user turn
/// or an empty answer).
#[derive(Debug, Clone, PartialEq)]
pub struct Turn<'a> {
    pub role: Role,
    pub messages: Vec<&'a Message>,
    /// The messages' texts joined by a blank line.
    pub text: String,
    /// Ids of the messages that gave text: the pattern's provenance, and its key, name these
    /// (an image-only message inside a question is part of the turn but not of the key, so
    /// keys made before images were read this way stay the same).
    pub text_ids: Vec<&'a str>,
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

    /// Every message id of the turn, text or not.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.messages.iter().map(|m| m.id.as_str())
    }
}

/// How an answer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Every message `completed` (or without a status) and its run, where known, `completed`.
    Completed,
    /// The answer stopped before it was done: the message's `incomplete_details.reason`
    /// (`content_filter`, `max_tokens`, `run_cancelled`, `run_expired`, `run_failed`),
    /// `in_progress`, or `run_<status>` when the message's run did not complete.
    Incomplete(String),
}

/// What became of one question.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate<'a> {
    Answered { answer: Turn<'a>, ending: Ending },
    /// The assistant turn after it holds a `refusal` part.
    Refused { answer: Turn<'a> },
    /// No answer with text: `run` is the run that should have answered, when one is known.
    Unanswered { run: Option<&'a Run>, why: String },
}

/// A user turn with text and its fate.
#[derive(Debug, Clone, PartialEq)]
pub struct Question<'a> {
    pub user: Turn<'a>,
    pub fate: Fate<'a>,
}

impl Question<'_> {
    /// The ids of the messages whose text an answered question holds, user ones first, each in
    /// thread order.
    pub fn message_ids(&self) -> Vec<&str> {
        match &self.fate {
            Fate::Answered { answer, .. } => self.user.text_ids.iter().chain(&answer.text_ids).copied().collect(),
            _ => self.user.text_ids.clone(),
        }
    }
}

/// A thread read as questions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conversation<'a> {
    pub questions: Vec<Question<'a>>,
    /// User turns with no text (image-only): each ends the pair before it and pairs with nothing.
    pub image_only: Vec<Turn<'a>>,
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

/// Run statuses (RunObject.status) that mean the run did not finish its answer. `completed`
/// is the only good end; a status outside the documented set is not taken as a failure.
const UNFINISHED_RUN: &[&str] =
    &["queued", "in_progress", "requires_action", "cancelling", "cancelled", "failed", "incomplete", "expired"];

/// Reads a thread's messages and runs as questions (see the module header).
pub fn conversation<'a>(
    messages: &'a [Message],
    runs: &'a [Run],
    file_names: &HashMap<String, String>,
) -> Conversation<'a> {
    let msgs: Vec<&Message> =
        chronological(messages).into_iter().filter(|m| matches!(m.role, Role::User | Role::Assistant)).collect();
    // Runs that produced no message of this thread: each answered nothing.
    let mut silent: Vec<&Run> =
        runs.iter().filter(|r| !msgs.iter().any(|m| m.run_id.as_deref() == Some(r.id.as_str()))).collect();
    silent.sort_by_key(|r| r.created_at);

    // Turns, each user turn with the silent run that came after it (if any).
    let mut turns: Vec<(Turn<'a>, Option<&'a Run>)> = Vec::new();
    for (i, msg) in msgs.iter().copied().enumerate() {
        let text = message_text(msg, file_names);
        let continues = turns.last().is_some_and(|(t, _)| t.role == msg.role)
            && !(msg.role == Role::User && silent_run_between(&silent, msgs[i - 1], msg).is_some());
        if continues {
            let (turn, _) = turns.last_mut().expect("checked above");
            if !text.is_empty() {
                if !turn.text.is_empty() {
                    turn.text.push_str("\n\n");
                }
                turn.text.push_str(&text);
                turn.text_ids.push(&msg.id);
            }
            turn.messages.push(msg);
        } else {
            let text_ids = if text.is_empty() { vec![] } else { vec![msg.id.as_str()] };
            turns.push((Turn { role: msg.role, messages: vec![msg], text, text_ids }, None));
        }
        if msg.role == Role::User {
            let next = msgs.get(i + 1).copied();
            let after = match next {
                Some(n) => silent_run_between(&silent, msg, n),
                None => silent.iter().rev().copied().find(|r| r.created_at >= msg.created_at),
            };
            if after.is_some() {
                turns.last_mut().expect("just pushed or extended").1 = after;
            }
        }
    }

    let mut out = Conversation::default();
    let mut it = turns.into_iter().peekable();
    while let Some((turn, silent_after)) = it.next() {
        if turn.role != Role::User {
            continue; // a greeting, or an answer already consumed below
        }
        let answer = match it.peek() {
            Some((next, _)) if next.role == Role::Assistant => it.next().map(|(t, _)| t),
            _ => None,
        };
        if turn.text.is_empty() {
            out.image_only.push(turn);
            continue; // the answer after an image-only turn pairs with nothing
        }
        let fate = match answer {
            Some(answer) if answer.messages.iter().any(|m| m.content.iter().any(|p| p.kind == "refusal")) => {
                Fate::Refused { answer }
            }
            Some(answer) if answer.text.is_empty() => Fate::Unanswered {
                run: answer.run_id().and_then(|id| runs.iter().find(|r| r.id == id)),
                why: format!("the answer {} has no text", answer.ids().collect::<Vec<_>>().join(", ")),
            },
            Some(answer) => {
                let ending = ending_of(&answer, runs);
                Fate::Answered { answer, ending }
            }
            None => Fate::Unanswered {
                run: silent_after,
                why: match silent_after {
                    Some(r) => format!("its run {} ended {:?} without an answer", r.id, r.status),
                    None => "no answer follows it".to_string(),
                },
            },
        };
        out.questions.push(Question { user: turn, fate });
    }
    out
}

/// The latest silent run created at or after `prev` and before `next` (the run `prev` started).
fn silent_run_between<'a>(silent: &[&'a Run], prev: &Message, next: &Message) -> Option<&'a Run> {
    silent.iter().rev().copied().find(|r| r.created_at >= prev.created_at && r.created_at < next.created_at)
}

/// How an answer turn ended: its first message that did not complete decides.
fn ending_of(answer: &Turn<'_>, runs: &[Run]) -> Ending {
    for m in &answer.messages {
        match m.status.as_deref() {
            Some("incomplete") => {
                let reason = m.incomplete_details.as_ref().and_then(|d| d.reason.clone());
                return Ending::Incomplete(reason.unwrap_or_else(|| "incomplete".to_string()));
            }
            Some("in_progress") => return Ending::Incomplete("in_progress".to_string()),
            _ => {}
        }
        let run = m.run_id.as_deref().and_then(|id| runs.iter().find(|r| r.id == id));
        if let Some(r) = run.filter(|r| UNFINISHED_RUN.contains(&r.status.as_str())) {
            return Ending::Incomplete(format!("run_{}", r.status));
        }
    }
    Ending::Completed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ContentPart, FileRef, IncompleteDetails, TextContent};

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
            incomplete_details: None,
        }
    }

    fn run(id: &str, at: i64, status: &str) -> Run {
        Run { id: id.into(), created_at: at, status: status.into(), ..Default::default() }
    }

    fn answered_in(m: &Message, run_id: &str) -> Message {
        Message { run_id: Some(run_id.into()), ..m.clone() }
    }

    /// (task, answer, message ids) of every answered question.
    fn pair_of(messages: &[Message]) -> Vec<(String, String, Vec<String>)> {
        pairs_with(messages, &[])
    }

    fn pairs_with(messages: &[Message], runs: &[Run]) -> Vec<(String, String, Vec<String>)> {
        conversation(messages, runs, &HashMap::new())
            .questions
            .into_iter()
            .filter_map(|q| {
                let ids = q.message_ids().into_iter().map(str::to_string).collect();
                match q.fate {
                    Fate::Answered { answer, .. } => Some((q.user.text, answer.text, ids)),
                    _ => None,
                }
            })
            .collect()
    }

    /// Each question's text with a short name of its fate.
    fn fates(messages: &[Message], runs: &[Run]) -> Vec<(String, String)> {
        conversation(messages, runs, &HashMap::new())
            .questions
            .into_iter()
            .map(|q| {
                let f = match q.fate {
                    Fate::Answered { ending: Ending::Completed, .. } => "answered".to_string(),
                    Fate::Answered { ending: Ending::Incomplete(r), .. } => format!("incomplete:{r}"),
                    Fate::Refused { .. } => "refused".to_string(),
                    Fate::Unanswered { run, .. } => format!("unanswered:{}", run.map_or("-", |r| r.status.as_str())),
                };
                (q.user.text, f)
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
        assert_eq!(fates(&m, &[])[1], ("Q2 unanswered".into(), "unanswered:-".into()));
        assert!(pair_of(&[msg("a0", 1, A, Some("Hello!"))]).is_empty());
        assert!(pair_of(&[msg("u0", 1, U, Some("anyone?"))]).is_empty());
    }

    /// Content parts of MessageObject (openai/openai-openapi): `image_file`, `image_url`, `text`,
    /// `refusal`. An image inside a question is part of it; an image-only turn is no question.
    #[test]
    fn an_image_in_a_question_is_part_of_it() {
        // The demo's "here is a photo" case: text, then an image-only message, then the answer.
        let m =
            [msg("u1", 1, U, Some("What is this?")), msg("u2", 2, U, None), msg("a1", 3, A, Some("A cat."))];
        assert_eq!(
            pair_of(&m),
            vec![("What is this?".into(), "A cat.".into(), vec!["u1".into(), "a1".into()])]
        );
        let mut url = msg("u3", 2, U, None);
        url.content = vec![ContentPart { kind: "image_url".into(), ..Default::default() }];
        let m = [url, msg("u1", 3, U, Some("And this?")), msg("a1", 4, A, Some("A dog."))];
        assert_eq!(pair_of(&m), vec![("And this?".into(), "A dog.".into(), vec!["u1".into(), "a1".into()])]);
    }

    #[test]
    fn an_image_only_turn_ends_the_pair_before_it_and_pairs_with_nothing() {
        let m = [
            msg("u1", 1, U, Some("What is 2 + 2?")),
            msg("a1", 2, A, Some("4.")),
            msg("u2", 3, U, None),
            msg("a2", 4, A, Some("A cat on a keyboard.")),
        ];
        assert_eq!(pair_of(&m), vec![("What is 2 + 2?".into(), "4.".into(), vec!["u1".into(), "a1".into()])]);
        let c = conversation(&m, &[], &HashMap::new());
        assert_eq!(c.image_only.len(), 1);
        assert_eq!(c.image_only[0].ids().collect::<Vec<_>>(), ["u2"]);
        assert!(pair_of(&[msg("u1", 1, U, None), msg("a1", 2, A, Some("Nice"))]).is_empty());
    }

    #[test]
    fn an_empty_answer_leaves_its_question_unanswered() {
        let m = [
            msg("u1", 1, U, Some("A")),
            msg("a0", 2, A, Some("  \n")),
            msg("u2", 3, U, Some("B")),
            msg("a1", 4, A, Some("ok")),
        ];
        assert_eq!(pair_of(&m), vec![("B".into(), "ok".into(), vec!["u2".into(), "a1".into()])]);
        assert_eq!(fates(&m, &[])[0], ("A".into(), "unanswered:-".into()));
    }

    #[test]
    fn a_refusal_is_no_answer_and_joins_nothing() {
        let mut refusal = msg("a0", 2, A, None);
        refusal.content = vec![ContentPart { kind: "refusal".into(), ..Default::default() }];
        let m = [
            msg("u1", 1, U, Some("How do I pick a lock?")),
            refusal.clone(),
            msg("u2", 3, U, Some("What is the capital of Australia?")),
            msg("a1", 4, A, Some("Canberra.")),
        ];
        assert_eq!(
            pair_of(&m),
            vec![("What is the capital of Australia?".into(), "Canberra.".into(), vec!["u2".into(), "a1".into()])]
        );
        assert_eq!(fates(&m, &[])[0].1, "refused");
        // A refusal next to text in the same answer still makes it a refusal.
        let mut mixed = msg("a0", 2, A, Some("I can't help with that."));
        mixed.content.push(ContentPart { kind: "refusal".into(), ..Default::default() });
        assert_eq!(fates(&[msg("u1", 1, U, Some("Q")), mixed], &[])[0].1, "refused");
    }

    /// RunObject.status (openai/openai-openapi): a run that produced no message answered nothing;
    /// the question it was started for is unanswered and never glued to the next one.
    #[test]
    fn a_run_that_answered_nothing_ends_its_question() {
        for status in ["requires_action", "failed", "cancelled", "expired", "incomplete", "cancelling", "queued", "in_progress"]
        {
            let m = [
                msg("u1", 10, U, Some("Where is order A-1?")),
                msg("u2", 20, U, Some("What is the capital of Australia?")),
                answered_in(&msg("a2", 22, A, Some("Canberra.")), "run_2"),
            ];
            let runs = [run("run_1", 11, status), run("run_2", 21, "completed")];
            assert_eq!(
                fates(&m, &runs),
                vec![
                    ("Where is order A-1?".to_string(), format!("unanswered:{status}")),
                    ("What is the capital of Australia?".to_string(), "answered".to_string())
                ],
                "{status}"
            );
            // The last question of a thread, with its silent run.
            let last = [msg("u1", 10, U, Some("Still there?"))];
            assert_eq!(fates(&last, &[run("run_1", 11, status)])[0].1, format!("unanswered:{status}"));
        }
        // A completed run without a message (e.g. a tool-only run) also answered nothing.
        let m = [msg("u1", 10, U, Some("Q1")), msg("u2", 20, U, Some("Q2")), msg("a2", 22, A, Some("A2"))];
        assert_eq!(pairs_with(&m, &[run("run_1", 11, "completed")]).len(), 1);
        assert_eq!(pairs_with(&m, &[run("run_1", 11, "completed")])[0].0, "Q2");
        // No runs known (an export without them): consecutive questions stay one turn.
        assert_eq!(pair_of(&m)[0].0, "Q1\n\nQ2");
    }

    /// MessageObject.status and incomplete_details.reason (openai/openai-openapi).
    #[test]
    fn how_an_answer_ended() {
        for reason in ["content_filter", "max_tokens", "run_cancelled", "run_expired", "run_failed"] {
            let mut a = msg("a1", 2, A, Some("Partial"));
            a.status = Some("incomplete".into());
            a.incomplete_details = Some(IncompleteDetails { reason: Some(reason.into()) });
            assert_eq!(fates(&[msg("u1", 1, U, Some("Q")), a], &[])[0].1, format!("incomplete:{reason}"));
        }
        let mut a = msg("a1", 2, A, Some("Partial"));
        a.status = Some("incomplete".into());
        assert_eq!(fates(&[msg("u1", 1, U, Some("Q")), a.clone()], &[])[0].1, "incomplete:incomplete");
        a.status = Some("in_progress".into());
        assert_eq!(fates(&[msg("u1", 1, U, Some("Q")), a.clone()], &[])[0].1, "incomplete:in_progress");
        a.status = Some("completed".into());
        assert_eq!(fates(&[msg("u1", 1, U, Some("Q")), a.clone()], &[])[0].1, "answered");
        // The message's run did not complete: its text is not a finished answer.
        for status in ["requires_action", "failed", "cancelled", "expired", "incomplete"] {
            let m = [msg("u1", 1, U, Some("Q")), answered_in(&msg("a1", 3, A, Some("Let me check.")), "run_1")];
            assert_eq!(fates(&m, &[run("run_1", 2, status)])[0].1, format!("incomplete:run_{status}"), "{status}");
        }
        let m = [msg("u1", 1, U, Some("Q")), answered_in(&msg("a1", 3, A, Some("Done.")), "run_1")];
        assert_eq!(fates(&m, &[run("run_1", 2, "completed")])[0].1, "answered");
        assert_eq!(fates(&m, &[run("run_1", 2, "some_future_status")])[0].1, "answered");
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
        let c = conversation(&m, &[], &HashMap::new());
        let Fate::Answered { answer, .. } = &c.questions[0].fate else { panic!("{c:?}") };
        assert_eq!(answer.run_id(), Some("run_1"));
        assert_eq!(answer.run_ids(), ["run_1", "run_2"]);
        assert_eq!(answer.assistant_id(), Some("asst_2"));
        assert_eq!(c.questions[0].user.created_at(), 1);
    }
}
