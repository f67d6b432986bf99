//! Extract: file bytes -> plain text, by detected type. Pure functions over bytes, plus
//! [`isolate`], which runs them where a panic or a runaway parser cannot take the run down.
//!
//! Detection looks at the content first (`%PDF-`, a zip holding `word/document.xml`, image
//! signatures, byte-order marks, `<html`/`<!doctype html`, JSON that parses) and at the
//! extension second (`.md`, `.csv`, `.tsv`, `.jsonl`, `.htm(l)`, ...). What cannot be read as
//! text (images, other archives, binaries) is `Unextractable`; what claims a type but breaks
//! its parser is `Malformed`. Neither is ever a panic or an error of the run.

pub mod docx;
pub mod html;
pub mod isolate;
pub mod pdf;
pub mod structured;
pub mod text;

#[cfg(test)]
#[path = "../../tests/data/files/generate.rs"]
pub(crate) mod testdata;

use std::cell::Cell;
use std::sync::Once;

/// What a file was detected as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pdf,
    Docx,
    Html,
    Markdown,
    Text,
    Json,
    JsonLines,
    Csv,
    Tsv,
    Image,
    /// A zip archive that is not a Word document (xlsx, pptx, a plain zip).
    Archive,
    Binary,
}

/// Extracted text and how to chunk it.
#[derive(Debug, Clone, PartialEq)]
pub struct Extracted {
    pub text: String,
    pub format: Format,
}

impl Extracted {
    /// Markdown is split on its own structure (headings, lists) by the chunker.
    pub fn is_markdown(&self) -> bool {
        self.format == Format::Markdown
    }
}

/// Why a file gave no text. Each becomes a warning of its own kind; none stops the run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExtractError {
    /// Not text and not a document engram reads (an image, an archive, a binary).
    #[error("{0}")]
    Unextractable(String),
    /// A document of a known type that its parser could not read (or that took too long).
    #[error("{0}")]
    Malformed(String),
}

impl ExtractError {
    /// The warning kind for the report.
    pub fn warning_kind(&self) -> &'static str {
        match self {
            ExtractError::Unextractable(_) => "file_unextractable",
            ExtractError::Malformed(_) => "file_malformed",
        }
    }
}

/// Limits that keep one file from taking all memory.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest decompressed part of an archive (DOCX's `word/document.xml`).
    pub max_decompressed_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_decompressed_bytes: 64 << 20 }
    }
}

/// Detects a file's type from its bytes and (second) its filename's extension.
pub fn detect(bytes: &[u8], filename: &str) -> Format {
    let ext = extension(filename);
    let head = &bytes[..bytes.len().min(1024)];
    if find(head, b"%PDF-").is_some() {
        return Format::Pdf;
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return if docx::is_docx(bytes) || ext == "docx" { Format::Docx } else { Format::Archive };
    }
    if is_image(bytes) {
        return Format::Image;
    }
    match ext.as_str() {
        "pdf" => return Format::Pdf,
        "docx" => return Format::Docx,
        "png" | "jpg" | "jpeg" | "gif" | "webp" | "bmp" | "tif" | "tiff" | "ico" | "heic" | "svg" => return Format::Image,
        "zip" | "xlsx" | "pptx" | "gz" | "tgz" | "7z" | "rar" | "tar" => return Format::Archive,
        _ => {}
    }
    // Only text from here on: sniff the decoded text, whatever its encoding.
    let Some(decoded) = text::decode(head_for_text(bytes)) else { return Format::Binary };
    let start = decoded.trim_start_matches('\u{FEFF}').trim_start();
    let lower: String = start.chars().take(512).collect::<String>().to_ascii_lowercase();
    if lower.starts_with("<!doctype html") || lower.starts_with("<html") || (lower.starts_with("<?xml") && lower.contains("<html")) {
        return Format::Html;
    }
    match ext.as_str() {
        "md" | "markdown" | "mdown" | "mkd" => Format::Markdown,
        "csv" => Format::Csv,
        "tsv" | "tab" => Format::Tsv,
        "jsonl" | "ndjson" => Format::JsonLines,
        "json" => Format::Json,
        "html" | "htm" | "xhtml" => Format::Html,
        _ if (start.starts_with('{') || start.starts_with('[')) && looks_like_json(bytes) => Format::Json,
        _ => Format::Text,
    }
}

/// Extracts text from a file: [`detect`], then the extractor for that type. May panic inside
/// pdf-extract; call it through [`isolate`].
pub fn extract(bytes: &[u8], filename: &str, limits: &Limits) -> Result<Extracted, ExtractError> {
    let format = detect(bytes, filename);
    extract_as(format, bytes, limits).map(|text| Extracted { text: text.trim().to_string(), format }).and_then(|e| {
        if e.text.is_empty() { Err(ExtractError::Unextractable("the file holds no text".into())) } else { Ok(e) }
    })
}

fn extract_as(format: Format, bytes: &[u8], limits: &Limits) -> Result<String, ExtractError> {
    let decode = || {
        text::decode(bytes).ok_or_else(|| ExtractError::Unextractable("binary data, not text in a known encoding".into()))
    };
    match format {
        Format::Pdf => pdf::extract(bytes),
        Format::Docx => docx::extract(bytes, limits.max_decompressed_bytes),
        Format::Html => html::extract(&decode()?),
        Format::Markdown | Format::Text => decode(),
        Format::Json => {
            let text = decode()?;
            structured::json(&text).ok_or_else(|| ExtractError::Malformed("the file is named .json but is not valid JSON".into()))
        }
        Format::JsonLines => Ok(structured::json_lines(&decode()?)),
        Format::Csv => structured::csv(&decode()?, b','),
        Format::Tsv => structured::csv(&decode()?, b'\t'),
        Format::Image => Err(ExtractError::Unextractable("an image: engram migrates text, not pictures".into())),
        Format::Archive => Err(ExtractError::Unextractable(
            "a zip archive that is not a Word document (a spreadsheet, a presentation or a plain zip)".into(),
        )),
        Format::Binary => Err(ExtractError::Unextractable("binary data, not text in a known encoding".into())),
    }
}

fn extension(filename: &str) -> String {
    std::path::Path::new(filename)
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn is_image(b: &[u8]) -> bool {
    b.starts_with(b"\x89PNG\r\n\x1a\n")
        || b.starts_with(b"\xFF\xD8\xFF")
        || b.starts_with(b"GIF87a")
        || b.starts_with(b"GIF89a")
        || (b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP")
        || b.starts_with(b"II*\0")
        || b.starts_with(b"MM\0*")
}

/// Enough of the file to sniff its text, cut at an even length so UTF-16 stays whole.
fn head_for_text(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len().min(4096) & !1]
}

/// Sniffing JSON means parsing it, so only files up to 8 MiB are sniffed; larger JSON is
/// recognised by its `.json` extension.
fn looks_like_json(bytes: &[u8]) -> bool {
    bytes.len() <= 8 << 20 && text::decode(bytes).is_some_and(|t| serde_json::from_str::<serde_json::Value>(&t).is_ok())
}

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, turning a panic into `Err(message)` without the default hook printing it over the
/// progress bar. Other threads' panics still print as usual.
pub fn catch_quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_quiet_hook();
    let was = QUIET.with(|q| q.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_string())
    })
}

fn install_quiet_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(bytes: &[u8], name: &str) -> Format {
        detect(bytes, name)
    }

    #[test]
    fn content_wins_over_the_extension() {
        assert_eq!(kind(&testdata::pdf(&[&["x"]]), "notes.txt"), Format::Pdf);
        assert_eq!(kind(&testdata::docx(&["x"]), "archive.zip"), Format::Docx);
        assert_eq!(kind(b"<!DOCTYPE html><p>x</p>", "page.txt"), Format::Html);
        assert_eq!(kind(b"  <html><body>x</body></html>", "no-extension"), Format::Html);
        assert_eq!(kind(b"{\"a\": [1, 2]}", "data.txt"), Format::Json);
        assert_eq!(kind(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "photo.txt"), Format::Image);
        assert_eq!(kind(&testdata::zip(&[("xl/workbook.xml", b"<w/>".as_slice())]), "book.xlsx"), Format::Archive);
    }

    #[test]
    fn the_extension_decides_among_texts() {
        assert_eq!(kind(b"# Title\n\ntext", "README.md"), Format::Markdown);
        assert_eq!(kind(b"a,b\n1,2\n", "t.csv"), Format::Csv);
        assert_eq!(kind(b"a\tb\n1\t2\n", "t.tsv"), Format::Tsv);
        assert_eq!(kind(b"{\"a\":1}\n{\"a\":2}\n", "t.jsonl"), Format::JsonLines);
        assert_eq!(kind(b"{broken", "t.json"), Format::Json);
        assert_eq!(kind(b"{broken", "t.txt"), Format::Text);
        assert_eq!(kind(b"plain words", "t"), Format::Text);
        assert_eq!(kind(b"not really a pdf", "scan.pdf"), Format::Pdf);
        assert_eq!(kind(b"\0\x01\x02\x03\x04\x05\x06\x07binary", "blob.bin"), Format::Binary);
    }

    #[test]
    fn utf16_html_and_json_are_sniffed_after_decoding() {
        let utf16 = |s: &str| {
            let mut v = vec![0xFF, 0xFE];
            s.encode_utf16().for_each(|u| v.extend_from_slice(&u.to_le_bytes()));
            v
        };
        assert_eq!(kind(&utf16("<html><body>hi</body></html>"), "x"), Format::Html);
        assert_eq!(kind(&utf16("{\"k\": \"v\"}"), "x"), Format::Json);
        assert_eq!(extract(&utf16("{\"k\": \"v\"}"), "x", &Limits::default()).unwrap().text, "k: v");
    }

    #[test]
    fn every_type_extracts() {
        let limits = Limits::default();
        let cases: Vec<(Vec<u8>, &str, &str)> = vec![
            (testdata::pdf(&[&["Glacier retreat survey"]]), "survey.pdf", "Glacier retreat survey"),
            (testdata::docx(&["Beekeeping calendar"]), "bees.docx", "Beekeeping calendar"),
            (b"<html><script>SCRIPT</script><p>Kite design</p></html>".to_vec(), "k.html", "Kite design"),
            (b"# Orchids\n\nWater weekly.".to_vec(), "o.md", "# Orchids\n\nWater weekly."),
            (b"\xEF\xBB\xBFBOM text".to_vec(), "b.txt", "BOM text"),
            (b"caf\xE9".to_vec(), "l.txt", "café"),
            (b"{\"river\": \"Danube\"}".to_vec(), "r.json", "river: Danube"),
            (b"city,population\nLyon,520000\n".to_vec(), "c.csv", "city: Lyon\npopulation: 520000"),
        ];
        for (bytes, name, want) in cases {
            let got = extract(&bytes, name, &limits).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(got.text.contains(want), "{name}: {:?}", got.text);
            assert!(!got.text.contains("SCRIPT"), "{name}");
        }
        assert!(extract(b"# T", "t.md", &limits).unwrap().is_markdown());
    }

    #[test]
    fn what_cannot_be_read_says_why() {
        let limits = Limits::default();
        let png = extract(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "p.png", &limits).unwrap_err();
        assert_eq!(png.warning_kind(), "file_unextractable");
        assert!(png.to_string().contains("image"));
        assert_eq!(extract(b"   \n ", "empty.txt", &limits).unwrap_err().warning_kind(), "file_unextractable");
        assert_eq!(extract(b"{broken", "t.json", &limits).unwrap_err().warning_kind(), "file_malformed");
        assert_eq!(extract(b"%PDF-1.4 truncated", "t.pdf", &limits).unwrap_err().warning_kind(), "file_malformed");
        let xlsx = testdata::zip(&[("xl/workbook.xml", b"<w/>".as_slice())]);
        assert_eq!(extract(&xlsx, "book.xlsx", &limits).unwrap_err().warning_kind(), "file_unextractable");
        // Named .docx but without word/document.xml: a broken Word file.
        assert_eq!(extract(&xlsx, "letter.docx", &limits).unwrap_err().warning_kind(), "file_malformed");
    }

    #[test]
    fn panics_are_caught_quietly() {
        let r: Result<(), String> = catch_quietly(|| panic!("boom {}", 42));
        assert_eq!(r.unwrap_err(), "boom 42");
        assert_eq!(catch_quietly(|| 7).unwrap(), 7);
    }
}
