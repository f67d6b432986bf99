//! PDF text with pdf-extract, page by page, pages separated by a blank line.
//!
//! pdf-extract panics on many malformed files (deliberately, upstream: jrmuizel/pdf-extract#47)
//! and has been seen to run for many minutes on others, so it never runs on the migrating
//! thread: `isolate` runs it in a child process (`engram extract-pdf FILE`, which calls
//! [`child_main`]) that a timeout can kill, or, where there is no engram binary to re-invoke, on
//! a detached thread. Panics are caught either way and become `Malformed`.

use super::{ExtractError, catch_quietly};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// The text of a PDF. Must be called through [`catch_quietly`] or in a child process: it
/// catches panics itself, but cannot stop a loop.
pub fn extract(bytes: &[u8]) -> Result<String, ExtractError> {
    let pages = catch_quietly(|| pdf_extract::extract_text_from_mem_by_pages(bytes))
        .map_err(|panic| ExtractError::Malformed(format!("the PDF parser failed on this file ({panic})")))?
        .map_err(|e| ExtractError::Malformed(format!("not a readable PDF: {e}")))?;
    let text: Vec<String> = pages.iter().map(|p| tidy(p)).filter(|p| !p.is_empty()).collect();
    if text.is_empty() {
        return Err(ExtractError::Unextractable(
            "the PDF has no text layer (a scan or images only); OCR it and supply the text in [files] local_dir".into(),
        ));
    }
    Ok(text.join("\n\n"))
}

/// pdf-extract's output: runs of spaces, blank lines between every line, trailing blanks.
fn tidy(page: &str) -> String {
    let mut out = String::new();
    let mut blank = false;
    for line in page.lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.is_empty() {
            blank = !out.is_empty();
            continue;
        }
        if blank {
            out.push('\n');
            blank = false;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&line);
    }
    out
}

/// What `engram extract-pdf` prints as the last line of its stdout (pdf-extract's dependencies
/// have been known to print, so the parent reads only that line).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildAnswer {
    Text(String),
    Unextractable(String),
    Malformed(String),
}

impl From<ChildAnswer> for Result<String, ExtractError> {
    fn from(a: ChildAnswer) -> Self {
        match a {
            ChildAnswer::Text(t) => Ok(t),
            ChildAnswer::Unextractable(m) => Err(ExtractError::Unextractable(m)),
            ChildAnswer::Malformed(m) => Err(ExtractError::Malformed(m)),
        }
    }
}

/// `engram extract-pdf FILE`: extracts one PDF and prints a [`ChildAnswer`] as one JSON line.
/// Exit status 0 whenever an answer was printed; anything else means the child died. A
/// watchdog ends the process after `timeout_secs`, should its parent no longer be there to.
pub fn child_main(file: &Path, timeout_secs: u64) -> u8 {
    let limit = std::time::Duration::from_secs(timeout_secs.max(1));
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        std::process::exit(124);
    });
    let answer = match std::fs::read(file) {
        Err(e) => ChildAnswer::Malformed(format!("cannot read {}: {e}", file.display())),
        Ok(bytes) => match extract(&bytes) {
            Ok(text) => ChildAnswer::Text(text),
            Err(ExtractError::Unextractable(m)) => ChildAnswer::Unextractable(m),
            Err(ExtractError::Malformed(m)) => ChildAnswer::Malformed(m),
        },
    };
    let line = serde_json::to_string(&answer).unwrap_or_else(|_| "{\"malformed\":\"unprintable answer\"}".into());
    let mut out = std::io::stdout().lock();
    match writeln!(out, "\n{line}").and_then(|_| out.flush()) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::testdata;

    #[test]
    fn a_generated_pdf_gives_its_text_page_by_page() {
        let pdf = testdata::pdf(&[
            &["Volcano monitoring handbook", "Seismometers record tremor before an eruption (usually)."],
            &["Page two: gas sensors measure sulphur dioxide."],
        ]);
        let text = extract(&pdf).unwrap();
        assert!(text.contains("Volcano monitoring handbook"), "{text}");
        assert!(text.contains("Seismometers record tremor before an eruption (usually)."), "{text}");
        assert!(text.contains("\n\nPage two: gas sensors measure sulphur dioxide."), "{text}");
    }

    #[test]
    fn broken_pdfs_are_malformed_not_panics() {
        for bytes in [
            b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF".to_vec(),
            testdata::pdf_with_missing_font("Text that needs a font that is not there"),
            b"%PDF-1.7\n\x00\x01garbage".to_vec(),
        ] {
            let result = extract(&bytes);
            assert!(matches!(result, Err(ExtractError::Malformed(_))), "{result:?}");
        }
    }

    #[test]
    fn a_pdf_without_text_is_unextractable() {
        let pdf = testdata::pdf(&[&[]]);
        assert!(matches!(extract(&pdf), Err(ExtractError::Unextractable(_))));
    }

    #[test]
    fn tidy_collapses_spacing() {
        assert_eq!(tidy("\n\n  Title  \n\n\n\nBody   text\nmore\n  \n"), "Title\n\nBody text\nmore");
    }

    #[test]
    fn child_answers_round_trip() {
        for a in [ChildAnswer::Text("t".into()), ChildAnswer::Malformed("m".into())] {
            let line = serde_json::to_string(&a).unwrap();
            let back: ChildAnswer = serde_json::from_str(&line).unwrap();
            assert_eq!(format!("{a:?}"), format!("{back:?}"));
        }
    }
}
