//! DOCX: a zip archive whose `word/document.xml` holds the text in `w:t` runs. A paragraph
//! (`</w:p>`) and a break (`w:br`, `w:cr`) end a line, `w:tab` is a tab. Everything else
//! (styles, images, headers) is ignored.
//!
//! The archive's own size fields are not trusted: `document.xml` is read through a limit, so a
//! zip bomb stops at `max_xml_bytes` instead of filling memory.

use super::ExtractError;
use quick_xml::events::Event;
use std::io::{Cursor, Read};

const DOCUMENT: &str = "word/document.xml";

/// Whether `bytes` are a zip archive holding `word/document.xml` (a Word document).
pub fn is_docx(bytes: &[u8]) -> bool {
    zip::ZipArchive::new(Cursor::new(bytes)).is_ok_and(|mut z| z.by_name(DOCUMENT).is_ok())
}

pub fn extract(bytes: &[u8], max_xml_bytes: u64) -> Result<String, ExtractError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| ExtractError::Malformed(format!("not a readable zip archive: {e}")))?;
    let entry = archive.by_name(DOCUMENT).map_err(|e| match e {
        zip::result::ZipError::FileNotFound => {
            ExtractError::Malformed(format!("no {DOCUMENT} in the archive: not a Word document"))
        }
        other => ExtractError::Malformed(format!("{DOCUMENT}: {other}")),
    })?;
    let mut xml = Vec::new();
    entry
        .take(max_xml_bytes + 1)
        .read_to_end(&mut xml)
        .map_err(|e| ExtractError::Malformed(format!("{DOCUMENT} cannot be decompressed: {e}")))?;
    if xml.len() as u64 > max_xml_bytes {
        return Err(ExtractError::Malformed(format!(
            "{DOCUMENT} decompresses to more than {max_xml_bytes} bytes (a zip bomb?); raise [files] max_bytes to allow it"
        )));
    }
    document_text(&xml)
}

/// The text of a `word/document.xml`.
fn document_text(xml: &[u8]) -> Result<String, ExtractError> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut out = String::new();
    let mut in_text = false;
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| ExtractError::Malformed(format!("{DOCUMENT} at byte {}: {e}", reader.buffer_position())))?;
        match event {
            Event::Start(e) if e.name().as_ref() == "w:t" => in_text = true,
            Event::End(e) => match e.name().as_ref() {
                "w:t" => in_text = false,
                "w:p" => out.push('\n'),
                _ => {}
            },
            Event::Empty(e) => match e.name().as_ref() {
                "w:tab" => out.push('\t'),
                "w:br" | "w:cr" => out.push('\n'),
                "w:p" => out.push('\n'),
                _ => {}
            },
            Event::Text(t) if in_text => out.push_str(&t.xml10_content()),
            Event::CData(t) if in_text => out.push_str(t.as_ref()),
            Event::GeneralRef(r) if in_text => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    out.push(c);
                } else if let Some(s) = quick_xml::escape::resolve_predefined_entity(&r.xml10_content()) {
                    out.push_str(s);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::testdata;

    #[test]
    fn paragraphs_tabs_breaks_and_entities() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>
<w:p><w:r><w:t>Sourdough &amp; rye</w:t></w:r><w:r><w:tab/><w:t xml:space="preserve"> need </w:t></w:r><w:r><w:t>starter.</w:t></w:r></w:p>
<w:p><w:r><w:t>Line one</w:t><w:br/><w:t>line two &#x2014; caf&#233;</w:t></w:r></w:p>
<w:p><w:pPr><w:jc w:val="center"/></w:pPr><w:r><w:rPr><w:b/></w:rPr><w:t>Bold</w:t></w:r></w:p>
</w:body></w:document>"#;
        let docx = testdata::docx_from_xml(xml);
        assert_eq!(extract(&docx, 1 << 20).unwrap(), "Sourdough & rye\t need starter.\nLine one\nline two — café\nBold\n");
    }

    #[test]
    fn generated_document_round_trips() {
        let docx = testdata::docx(&["First paragraph about proofing baskets.", "Second < third & fourth."]);
        assert!(is_docx(&docx));
        assert_eq!(extract(&docx, 1 << 20).unwrap(), "First paragraph about proofing baskets.\nSecond < third & fourth.\n");
    }

    #[test]
    fn a_zip_without_document_xml_is_refused() {
        let xlsx = testdata::zip(&[("xl/workbook.xml", b"<workbook/>".as_slice())]);
        assert!(!is_docx(&xlsx));
        let err = extract(&xlsx, 1 << 20).unwrap_err();
        assert!(matches!(&err, ExtractError::Malformed(m) if m.contains("word/document.xml")), "{err:?}");
    }

    #[test]
    fn decompressed_size_is_capped() {
        // 8 MiB of zeros inside a paragraph compresses to a few KiB.
        let mut xml = String::from("<w:document xmlns:w=\"w\"><w:body><w:p><w:r><w:t>");
        xml.push_str(&"0".repeat(8 << 20));
        xml.push_str("</w:t></w:r></w:p></w:body></w:document>");
        let bomb = testdata::docx_from_xml(&xml);
        assert!(bomb.len() < 100_000, "the test archive is {} bytes", bomb.len());
        let err = extract(&bomb, 1 << 20).unwrap_err();
        assert!(matches!(&err, ExtractError::Malformed(m) if m.contains("zip bomb")), "{err:?}");
        assert!(extract(&bomb, 16 << 20).is_ok());
    }

    #[test]
    fn broken_xml_is_malformed() {
        let docx = testdata::docx_from_xml("<w:document><w:body><w:p><w:t>unclosed</w:p>");
        assert!(matches!(extract(&docx, 1 << 20), Err(ExtractError::Malformed(_))));
    }
}
