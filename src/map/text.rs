//! Text of a message, citation clean-up and truncation.
//!
//! Invariants: every function here returns valid UTF-8 cut only at char boundaries, and the
//! text of an assistant message never contains a citation marker (`【4:0†source】`).

use crate::model::{Annotation, Message, Role};
use std::collections::HashMap;

pub use crate::model::VERBATIM_TEXT;

/// The text of one message: its `text` parts, cleaned and joined by a blank line.
///
/// Image, refusal and unknown parts are left out. Assistant parts have their citation markers
/// resolved first, so a part that held nothing but a marker counts as empty. Returns an empty
/// string when nothing readable is left (the caller treats such a message as absent).
pub fn message_text(msg: &Message, file_names: &HashMap<String, String>) -> String {
    let mut parts: Vec<String> = Vec::new();
    for part in &msg.content {
        if part.kind != "text" && part.kind != VERBATIM_TEXT {
            continue;
        }
        let Some(text) = &part.text else { continue };
        // Only assistants cite files; user text is kept verbatim (a user may well type `【】`),
        // and so is text whose source has no markers (the Responses API's).
        let cleaned = if msg.role == Role::Assistant && part.kind == "text" {
            clean_citations(&text.value, &text.annotations, file_names)
        } else {
            text.value.clone()
        };
        let trimmed = trim_blank_edges(&cleaned);
        if !trimmed.is_empty() {
            parts.push(trimmed.to_string());
        }
    }
    parts.join("\n\n")
}

/// Trims trailing whitespace and leading *blank lines*, but keeps the indentation of the first
/// line: an answer that starts with an indented code block must stay a code block.
pub fn trim_blank_edges(s: &str) -> &str {
    let s = s.trim_end();
    let Some(first) = s.find(|c: char| !c.is_whitespace()) else { return "" };
    let line_start = s[..first].rfind('\n').map_or(0, |nl| nl + 1);
    &s[line_start..]
}

/// What to put where an annotation's marker stood.
enum Replacement {
    With(String),
    Remove,
    Keep,
}

/// Replaces annotated markers by `[<filename>]` (or removes them when the file is unknown) and
/// removes any citation marker that has no annotation.
///
/// Markers are matched by their text, not by `start_index`/`end_index`: servers disagree on
/// whether those count bytes, chars or UTF-16 units, and the text is what the API guarantees.
/// `file_path` annotations (`sandbox:/mnt/data/x.csv`) are replaced when the file is known and
/// otherwise kept: the path still tells a reader what the file was.
pub fn clean_citations(
    value: &str,
    annotations: &[Annotation],
    file_names: &HashMap<String, String>,
) -> String {
    let rules: Vec<(&str, Replacement)> = annotations
        .iter()
        .filter(|a| !a.text.is_empty())
        .map(|a| {
            // An empty name is how the run records a file the API did not return: unknown.
            let known = a
                .file_id()
                .and_then(|id| file_names.get(id))
                .filter(|n| !n.trim().is_empty())
                .map(|n| format!("[{n}]"));
            let rule = match (a.file_path.is_some() && a.file_citation.is_none(), known) {
                (_, Some(r)) => Replacement::With(r),
                (true, None) => Replacement::Keep,
                (false, None) if is_citation_marker(&a.text) || a.kind == "file_citation" => {
                    Replacement::Remove
                }
                (false, None) => Replacement::Keep,
            };
            (a.text.as_str(), rule)
        })
        .collect();

    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(c) = rest.chars().next() {
        if let Some((marker, rule)) = rules.iter().find(|(m, _)| rest.starts_with(m)) {
            rest = &rest[marker.len()..];
            match rule {
                // "one【4:0†source】." reads "one [guide.pdf]."; a second marker citing the
                // same file right after the first adds nothing.
                Replacement::With(r) if out.trim_end().ends_with(r.as_str()) => {}
                Replacement::With(r) => {
                    if out.chars().last().is_some_and(|c| !c.is_whitespace() && c != '(') {
                        out.push(' ');
                    }
                    out.push_str(r)
                }
                Replacement::Keep => out.push_str(marker),
                Replacement::Remove => rest = after_removal(&mut out, rest),
            }
            continue;
        }
        if c == '【'
            && let Some(len) = stray_marker_len(rest)
        {
            rest = after_removal(&mut out, &rest[len..]);
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Tidies the seam where a marker was removed: "see the manual 【4:0†source】." must read
/// "see the manual." and not "see the manual ." Returns the rest of the input to scan.
fn after_removal<'a>(out: &mut String, rest: &'a str) -> &'a str {
    let next = rest.chars().next();
    if next.is_none_or(|n| n.is_whitespace() || is_closing_punct(n)) {
        let kept = out.trim_end_matches([' ', '\t']).len();
        out.truncate(kept);
    }
    // A marker at the start of a line leaves no leading space behind it either.
    if out.is_empty() || out.ends_with('\n') {
        return rest.trim_start_matches([' ', '\t']);
    }
    rest
}

fn is_closing_punct(c: char) -> bool {
    ".,;:!?)]}\"'…。、，．！？）：；」』".contains(c)
}

/// Byte length of the citation marker at the start of `s` (which starts with `【`), if any.
fn stray_marker_len(s: &str) -> Option<usize> {
    let body_start = '【'.len_utf8();
    let close = s[body_start..].find(['】', '【', '\n'])? + body_start;
    if !s[close..].starts_with('】') {
        return None;
    }
    let len = close + '】'.len_utf8();
    is_citation_marker(&s[..len]).then_some(len)
}

/// True for the markers OpenAI's file search writes: `【4:0†source】`, `【12†manual.pdf】`,
/// `【4:0】`. Deliberately *not* every `【…】`: Chinese and Japanese text uses these brackets
/// for headings (`【注意】`), and removing them would silently damage answers.
pub fn is_citation_marker(s: &str) -> bool {
    let Some(body) = s.strip_prefix('【').and_then(|b| b.strip_suffix('】')) else {
        return false;
    };
    if body.is_empty() || body.contains(['【', '】', '\n']) {
        return false;
    }
    body.contains('†') || body.chars().all(|c| c.is_ascii_digit() || c == ':')
}

/// Cuts `s` to at most `max` chars (Unicode scalar values) and trims trailing whitespace.
///
/// A cut never lands inside a UTF-8 sequence, and where it can it also avoids splitting a
/// combining mark, variation selector, skin-tone modifier or zero-width joiner from the char
/// before it: "e\u{301}" is either kept whole or dropped whole.
pub fn truncate_chars(s: &str, max: usize) -> &str {
    let Some((cut, _)) = s.char_indices().nth(max) else {
        return s.trim_end();
    };
    let mut end = cut;
    // Back off while the cut would separate a char from what modifies it.
    while end > 0 {
        let next = s[end..].chars().next();
        let prev = s[..end].chars().next_back();
        let splits = next.is_some_and(is_modifier) || prev.is_some_and(|p| p == '\u{200D}');
        if !splits {
            break;
        }
        end = s[..end].char_indices().next_back().map_or(0, |(i, _)| i);
    }
    // A "cluster" longer than the whole budget: fall back to the plain char cut.
    let end = if end == 0 { cut } else { end };
    s[..end].trim_end()
}

/// Chars that modify the char before them and must not start a cut-off remainder.
fn is_modifier(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'     // combining diacritical marks
        | '\u{1AB0}'..='\u{1AFF}'   // ... extended
        | '\u{1DC0}'..='\u{1DFF}'   // ... supplement
        | '\u{20D0}'..='\u{20FF}'   // ... for symbols
        | '\u{FE20}'..='\u{FE2F}'   // combining half marks
        | '\u{3099}' | '\u{309A}'   // kana voiced sound marks
        | '\u{FE00}'..='\u{FE0F}'   // variation selectors
        | '\u{200D}'                // zero-width joiner
        | '\u{1F3FB}'..='\u{1F3FF}' // emoji skin tones
        | '\u{E0020}'..='\u{E007F}' // emoji tag sequences (flags)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ContentPart, FileRef, TextContent};

    fn cite(marker: &str, file: &str) -> Annotation {
        Annotation {
            kind: "file_citation".into(),
            text: marker.into(),
            file_citation: Some(FileRef { file_id: file.into() }),
            ..Default::default()
        }
    }

    fn path(text: &str, file: &str) -> Annotation {
        Annotation {
            kind: "file_path".into(),
            text: text.into(),
            file_path: Some(FileRef { file_id: file.into() }),
            ..Default::default()
        }
    }

    fn names() -> HashMap<String, String> {
        HashMap::from([("file-1".to_string(), "manual.pdf".to_string())])
    }

    #[test]
    fn known_citation_becomes_a_reference() {
        let out =
            clean_citations("see the manual 【4:0†source】.", &[cite("【4:0†source】", "file-1")], &names());
        assert_eq!(out, "see the manual [manual.pdf].");
        // OpenAI writes markers right after the word; the reference gets its own space, and a
        // second marker for the same file right after it adds nothing.
        let a = [cite("【4:0†source】", "file-1"), cite("【4:1†source】", "file-1")];
        let out = clean_citations("the old one【4:0†source】【4:1†source】.", &a, &names());
        assert_eq!(out, "the old one [manual.pdf].");
    }

    #[test]
    fn unknown_citation_is_removed_without_a_dangling_space() {
        let a = [cite("【4:0†source】", "file-9")];
        assert_eq!(clean_citations("see the manual 【4:0†source】.", &a, &names()), "see the manual.");
        assert_eq!(clean_citations("a 【4:0†source】 b", &a, &names()), "a b");
        assert_eq!(clean_citations("【4:0†source】 Start", &a, &names()), "Start");
        assert_eq!(clean_citations("end 【4:0†source】", &a, &names()), "end");
        assert_eq!(clean_citations("x 【4:0†source】\ny", &a, &names()), "x\ny");
    }

    #[test]
    fn stray_markers_are_removed_but_cjk_headings_stay() {
        let out = clean_citations("Yes 【7:2†source】【12†notes.txt】, and 【3:1】 done.", &[], &names());
        assert_eq!(out, "Yes, and done.");
        assert!(!out.contains('【'));
        let cjk = "【注意】マニュアル【4:0†source】。";
        assert_eq!(clean_citations(cjk, &[], &names()), "【注意】マニュアル。");
        // An unclosed bracket is text, not a marker.
        assert_eq!(clean_citations("a 【4:0 b", &[], &names()), "a 【4:0 b");
    }

    #[test]
    fn every_occurrence_of_a_marker_is_handled() {
        let a = [cite("【1:0†source】", "file-1")];
        let out = clean_citations("A 【1:0†source】 and B 【1:0†source】", &a, &names());
        assert_eq!(out, "A [manual.pdf] and B [manual.pdf]");
    }

    #[test]
    fn file_paths_are_replaced_when_known_else_kept() {
        let text = "Download it: sandbox:/mnt/data/x.csv";
        let known = [path("sandbox:/mnt/data/x.csv", "file-1")];
        assert_eq!(clean_citations(text, &known, &names()), "Download it: [manual.pdf]");
        let unknown = [path("sandbox:/mnt/data/x.csv", "file-7")];
        assert_eq!(clean_citations(text, &unknown, &names()), text);
    }

    /// A cited file the API no longer returns is recorded with an empty name: the marker is
    /// removed cleanly, never written as `[]` (annotation shapes: MessageContentTextAnnotations-
    /// FileCitationObject / FilePathObject, openai/openai-openapi openapi.yaml).
    #[test]
    fn deleted_files_leave_no_empty_brackets() {
        let gone = HashMap::from([("file-gone".to_string(), String::new())]);
        let a = [cite("【4:0†source】", "file-gone")];
        assert_eq!(clean_citations("see 【4:0†source】.", &a, &gone), "see.");
        assert_eq!(clean_citations("a 【4:0†source】 b", &a, &gone), "a b");
        let p = [path("sandbox:/mnt/data/out.csv", "file-gone")];
        let out = clean_citations("Get [out.csv](sandbox:/mnt/data/out.csv).", &p, &gone);
        assert_eq!(out, "Get [out.csv](sandbox:/mnt/data/out.csv).");
        assert!(!out.contains("[]"));
    }

    #[test]
    fn empty_annotation_text_is_ignored() {
        let a = [cite("", "file-1")];
        assert_eq!(clean_citations("unchanged", &a, &names()), "unchanged");
    }

    fn msg(role: Role, parts: Vec<ContentPart>) -> Message {
        Message {
            id: "m".into(),
            created_at: 0,
            thread_id: "t".into(),
            role,
            content: parts,
            assistant_id: None,
            run_id: None,
            attachments: vec![],
            metadata: Default::default(),
            status: None,
            incomplete_details: None,
        }
    }

    fn text_part(v: &str) -> ContentPart {
        ContentPart {
            kind: "text".into(),
            text: Some(TextContent { value: v.into(), annotations: vec![] }),
            image_file: None,
        }
    }

    #[test]
    fn message_text_joins_text_parts_and_skips_the_rest() {
        let image = ContentPart {
            kind: "image_file".into(),
            image_file: Some(FileRef { file_id: "f".into() }),
            ..Default::default()
        };
        let m =
            msg(Role::User, vec![text_part("one\n"), image, text_part("  \n "), text_part("\n\n    two")]);
        assert_eq!(message_text(&m, &names()), "one\n\n    two");
        let only_marker = msg(Role::Assistant, vec![text_part(" 【4:0†source】 ")]);
        assert_eq!(message_text(&only_marker, &names()), "");
        // User text keeps its brackets: only assistants cite.
        let user = msg(Role::User, vec![text_part("what is 【4:0†source】?")]);
        assert_eq!(message_text(&user, &names()), "what is 【4:0†source】?");
    }

    #[test]
    fn truncation_counts_chars_and_keeps_utf8_whole() {
        assert_eq!(truncate_chars("hello world", 5), "hello");
        assert_eq!(truncate_chars("hello world", 6), "hello");
        assert_eq!(truncate_chars("short", 100), "short");
        assert_eq!(truncate_chars("日本語のテキスト", 3), "日本語");
        assert_eq!(truncate_chars("🎉🎉🎉", 2), "🎉🎉");
        // Combining acute accent: never separated from its base.
        assert_eq!(truncate_chars("cafe\u{301} noir", 4), "caf");
        assert_eq!(truncate_chars("cafe\u{301} noir", 5), "cafe\u{301}");
        // ZWJ family emoji: no dangling joiner.
        let family = "ab👨\u{200D}👩\u{200D}👧";
        assert_eq!(truncate_chars(family, 4), "ab");
        // Thumbs up with skin tone stays whole or goes.
        assert_eq!(truncate_chars("ok 👍\u{1F3FD}", 4), "ok");
        for max in 0..12 {
            let t = truncate_chars("é😀中\u{301}x y", max);
            assert!(t.chars().count() <= max);
        }
    }

    #[test]
    fn citation_marker_shapes() {
        assert!(is_citation_marker("【4:0†source】"));
        assert!(is_citation_marker("【12†manual.pdf】"));
        assert!(is_citation_marker("【4:0】"));
        assert!(!is_citation_marker("【注意】"));
        assert!(!is_citation_marker("【】"));
    }
}
