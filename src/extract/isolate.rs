//! Runs extraction where a panic or a parser that never returns cannot take the run down.
//!
//! - PDFs go to a child process, `engram extract-pdf FILE` (the running binary re-invoked),
//!   bounded by the timeout and killed when it runs out. Its panics and stderr stay in it.
//! - Everything else, and PDFs when there is no engram binary to re-invoke (the library used
//!   from another program, unit tests), runs on a detached thread under `catch_unwind`, bounded
//!   by the same timeout. A thread cannot be killed: one that times out is abandoned and keeps
//!   its CPU until it returns or the process exits. It is a plain thread rather than
//!   `spawn_blocking` because tokio waits for blocking tasks when the runtime shuts down, so an
//!   abandoned one would keep engram from exiting.

use super::{ExtractError, Extracted, Format, Limits, catch_quietly, detect};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// How extraction is bounded.
#[derive(Debug, Clone)]
pub struct Isolation {
    /// Per file, whatever the type.
    pub timeout: Duration,
    /// The engram binary, re-invoked as `engram extract-pdf FILE`; `None` extracts PDFs on a
    /// thread.
    pub pdf_helper: Option<PathBuf>,
    pub limits: Limits,
}

/// Detects and extracts one file, isolated.
pub async fn extract(bytes: Vec<u8>, filename: &str, iso: &Isolation) -> Result<Extracted, ExtractError> {
    // Whether a file is a PDF is decided by its first KiB (the signature) or its extension, so
    // the head is enough, and nothing heavier runs here on the async thread.
    let head = &bytes[..bytes.len().min(4096)];
    if let (Format::Pdf, Some(exe)) = (detect(head, filename), &iso.pdf_helper) {
        let text = pdf_in_child(exe, &bytes, iso).await?;
        let text = text.trim().to_string();
        if text.is_empty() {
            return Err(ExtractError::Unextractable("the file holds no text".into()));
        }
        return Ok(Extracted { text, format: Format::Pdf });
    }
    let name = filename.to_string();
    let limits = iso.limits;
    on_thread(iso.timeout, move || super::extract(&bytes, &name, &limits)).await
}

/// Runs `f` on its own thread, panics caught, for at most `timeout`.
async fn on_thread<T: Send + 'static>(
    timeout: Duration,
    f: impl FnOnce() -> Result<T, ExtractError> + Send + 'static,
) -> Result<T, ExtractError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("engram-extract".into())
        .spawn(move || {
            let _ = tx.send(catch_quietly(f));
        })
        .map_err(|e| ExtractError::Malformed(format!("could not start an extraction thread: {e}")))?;
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(Ok(result))) => result,
        Ok(Ok(Err(panic))) => Err(ExtractError::Malformed(format!("the parser failed on this file ({panic})"))),
        Ok(Err(_)) => Err(ExtractError::Malformed("the extraction thread ended without an answer".into())),
        Err(_) => Err(timed_out(timeout)),
    }
}

fn timed_out(timeout: Duration) -> ExtractError {
    ExtractError::Malformed(format!(
        "extraction did not finish within {} s ([files] extract_timeout_secs); the file was skipped",
        timeout.as_secs()
    ))
}

async fn pdf_in_child(exe: &std::path::Path, bytes: &[u8], iso: &Isolation) -> Result<String, ExtractError> {
    let io_error = |what: &str, e: std::io::Error| ExtractError::Malformed(format!("{what}: {e}"));
    let mut file = tempfile::Builder::new()
        .prefix("engram-pdf-")
        .suffix(".pdf")
        .tempfile()
        .map_err(|e| io_error("creating a temporary file for the PDF", e))?;
    std::io::Write::write_all(&mut file, bytes).map_err(|e| io_error("writing the PDF to a temporary file", e))?;
    let mut child = tokio::process::Command::new(exe)
        .arg("extract-pdf")
        .arg(file.path())
        .arg("--timeout-secs")
        .arg((iso.timeout.as_secs() + 5).to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| io_error(&format!("starting {} extract-pdf", exe.display()), e))?;
    // Text is at most a few times the PDF's size; JSON escaping may double it.
    let max_out = (iso.limits.max_decompressed_bytes.max(1 << 20)) * 4;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let run = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut stdout = (&mut stdout).take(max_out + 1);
        let mut stderr = (&mut stderr).take(64 << 10);
        let (o, e, status) =
            tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err), child.wait());
        (o.map(|_| out), e.map(|_| err), status)
    };
    // On timeout `run` is dropped with `child`, which kills the process (kill_on_drop).
    let (out, err, status) = tokio::time::timeout(iso.timeout, run).await.map_err(|_| timed_out(iso.timeout))?;
    let out = out.map_err(|e| io_error("reading extract-pdf's output", e))?;
    if out.len() as u64 > max_out {
        return Err(ExtractError::Malformed(format!("the PDF's text exceeds {max_out} bytes")));
    }
    let answer = String::from_utf8_lossy(&out)
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str::<super::pdf::ChildAnswer>(l).ok());
    match answer {
        Some(a) => a.into(),
        None => {
            let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
            let stderr = String::from_utf8_lossy(&err.unwrap_or_default()).lines().last().unwrap_or_default().to_string();
            Err(ExtractError::Malformed(format!("the PDF parser process gave no answer ({status}) {stderr}").trim_end().to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::testdata;

    fn iso(timeout_ms: u64) -> Isolation {
        Isolation { timeout: Duration::from_millis(timeout_ms), pdf_helper: None, limits: Limits::default() }
    }

    #[tokio::test]
    async fn a_thread_that_never_returns_is_abandoned_after_the_timeout() {
        let started = std::time::Instant::now();
        let r: Result<(), _> = on_thread(Duration::from_millis(200), || loop {
            std::thread::sleep(Duration::from_millis(50));
        })
        .await;
        assert!(matches!(&r, Err(ExtractError::Malformed(m)) if m.contains("did not finish")), "{r:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn panics_become_malformed() {
        let r: Result<(), _> = on_thread(Duration::from_secs(5), || panic!("parser bug")).await;
        assert!(matches!(&r, Err(ExtractError::Malformed(m)) if m.contains("parser bug")), "{r:?}");
    }

    #[tokio::test]
    async fn in_process_extraction_of_every_kind() {
        let pdf = testdata::pdf(&[&["Tidal energy notes"]]);
        assert!(extract(pdf, "t.pdf", &iso(30_000)).await.unwrap().text.contains("Tidal energy notes"));
        let broken = testdata::pdf_with_missing_font("x");
        assert_eq!(extract(broken, "b.pdf", &iso(30_000)).await.unwrap_err().warning_kind(), "file_malformed");
        assert_eq!(extract(b"hello".to_vec(), "h.txt", &iso(30_000)).await.unwrap().text, "hello");
    }

    #[tokio::test]
    async fn a_helper_that_is_not_engram_is_a_malformed_file_not_a_crash() {
        let mut i = iso(10_000);
        i.pdf_helper = Some(PathBuf::from("/bin/true"));
        let r = extract(testdata::pdf(&[&["x"]]), "t.pdf", &i).await;
        assert!(matches!(&r, Err(ExtractError::Malformed(m)) if m.contains("no answer")), "{r:?}");
        i.pdf_helper = Some(PathBuf::from("/nonexistent/engram"));
        assert_eq!(extract(testdata::pdf(&[&["x"]]), "t.pdf", &i).await.unwrap_err().warning_kind(), "file_malformed");
    }
}
