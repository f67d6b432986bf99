//! Bytes -> text for plain-text files: UTF-8 (with or without a BOM), UTF-16 LE/BE (with a
//! BOM, or without one when the zero bytes say so), Latin-1 as the last resort. Binary data is
//! refused (`None`) rather than decoded into noise.

/// Decodes `bytes` as text, or `None` when they look binary (NUL bytes in what is not UTF-16,
/// or many control characters). Line endings become `\n`.
pub fn decode(bytes: &[u8]) -> Option<String> {
    let text = if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        String::from_utf8_lossy(rest).into_owned()
    } else if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        utf16(rest, u16::from_le_bytes)
    } else if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        utf16(rest, u16::from_be_bytes)
    } else if let Some(le) = utf16_without_bom(bytes) {
        if le { utf16(bytes, u16::from_le_bytes) } else { utf16(bytes, u16::from_be_bytes) }
    } else if bytes.contains(&0) {
        return None;
    } else {
        match std::str::from_utf8(bytes) {
            Ok(s) => s.to_string(),
            // Latin-1 maps every byte to the code point of the same value: never fails.
            Err(_) => bytes.iter().map(|&b| b as char).collect(),
        }
    };
    if looks_binary(&text) {
        return None;
    }
    Some(normalize_newlines(&text))
}

/// Whether `bytes` start with a byte-order mark (then they are text whatever else they hold).
pub fn has_bom(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\xEF\xBB\xBF") || bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF")
}

fn utf16(bytes: &[u8], read: fn([u8; 2]) -> u16) -> String {
    let units: Vec<u16> = bytes.chunks_exact(2).map(|c| read([c[0], c[1]])).collect();
    String::from_utf16_lossy(&units)
}

/// UTF-16 without a BOM, told by its zero bytes: text that is mostly ASCII has a zero in every
/// other byte (odd positions for little-endian, even for big-endian) and none in the others.
/// `Some(true)` = LE, `Some(false)` = BE.
fn utf16_without_bom(bytes: &[u8]) -> Option<bool> {
    let sample = &bytes[..bytes.len().min(4096) & !1];
    if sample.len() < 4 {
        return None;
    }
    let pairs = sample.len() / 2;
    let zeros_even = sample.iter().step_by(2).filter(|&&b| b == 0).count();
    let zeros_odd = sample.iter().skip(1).step_by(2).filter(|&&b| b == 0).count();
    let mostly = |n: usize| n * 10 >= pairs * 4;
    let rarely = |n: usize| n * 20 <= pairs;
    if mostly(zeros_odd) && rarely(zeros_even) {
        Some(true)
    } else if mostly(zeros_even) && rarely(zeros_odd) {
        Some(false)
    } else {
        None
    }
}

/// More than 2% control characters (other than whitespace and form feed) is not text.
fn looks_binary(text: &str) -> bool {
    let mut total = 0usize;
    let mut control = 0usize;
    for c in text.chars().take(8192) {
        total += 1;
        if (c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\x0c')) || c == '\u{FFFD}' {
            control += 1;
        }
    }
    total > 0 && control * 50 > total
}

pub fn normalize_newlines(text: &str) -> String {
    if text.contains('\r') { text.replace("\r\n", "\n").replace('\r', "\n") } else { text.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Grüße aus Köln — naïve café, 日本語 ✓\nsecond line";

    fn utf16_bytes(s: &str, le: bool, bom: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if bom {
            out.extend_from_slice(if le { &[0xFF, 0xFE] } else { &[0xFE, 0xFF] });
        }
        for u in s.encode_utf16() {
            out.extend_from_slice(&if le { u.to_le_bytes() } else { u.to_be_bytes() });
        }
        out
    }

    #[test]
    fn utf8_with_and_without_bom() {
        assert_eq!(decode(SAMPLE.as_bytes()).unwrap(), SAMPLE);
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(SAMPLE.as_bytes());
        assert_eq!(decode(&bom).unwrap(), SAMPLE);
    }

    #[test]
    fn utf16_with_boms() {
        assert_eq!(decode(&utf16_bytes(SAMPLE, true, true)).unwrap(), SAMPLE);
        assert_eq!(decode(&utf16_bytes(SAMPLE, false, true)).unwrap(), SAMPLE);
    }

    #[test]
    fn utf16_without_bom_is_recognised_by_its_zero_bytes() {
        let english = "Plain English notes about the harbour ferry timetable.\nLine two.";
        assert_eq!(decode(&utf16_bytes(english, true, false)).unwrap(), english);
        assert_eq!(decode(&utf16_bytes(english, false, false)).unwrap(), english);
    }

    #[test]
    fn latin1_is_the_last_resort() {
        // "café naïve Ærø" in ISO-8859-1: not valid UTF-8.
        let bytes = b"caf\xE9 na\xEFve \xC6r\xF8";
        assert_eq!(decode(bytes).unwrap(), "café naïve Ærø");
    }

    #[test]
    fn binary_is_refused() {
        assert_eq!(decode(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), None);
        let noise: Vec<u8> = (0u8..=255).cycle().take(2000).filter(|&b| b != 0).map(|b| b % 32).collect();
        assert_eq!(decode(&noise), None);
    }

    #[test]
    fn crlf_becomes_lf() {
        assert_eq!(decode(b"a\r\nb\rc").unwrap(), "a\nb\nc");
    }
}
