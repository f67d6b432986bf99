//! JSON and CSV as readable lines: JSON flattened to `path: value`, CSV rows as `column: value`.
//! Each top-level JSON entry and each CSV row is one paragraph (blank line between), so the
//! chunker keeps a record together and a chunk reads like the data it came from.

use super::ExtractError;
use serde_json::Value;

/// A JSON document, flattened. `None` when `text` is not JSON.
pub fn json(text: &str) -> Option<String> {
    let value: Value = serde_json::from_str(text).ok()?;
    Some(flatten_top(&value))
}

/// JSON Lines: every non-empty line a JSON value, each flattened into its own paragraph; a line
/// that is not JSON is kept as it is.
pub fn json_lines(text: &str) -> String {
    let paragraphs: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str::<Value>(l).map(|v| flatten(&v, "")).unwrap_or_else(|_| l.to_string()))
        .collect();
    paragraphs.join("\n\n")
}

fn flatten_top(value: &Value) -> String {
    let paragraphs: Vec<String> = match value {
        Value::Array(items) if !items.is_empty() => {
            items.iter().enumerate().map(|(i, v)| flatten(v, &format!("[{i}]"))).collect()
        }
        Value::Object(map) if !map.is_empty() => map.iter().map(|(k, v)| flatten(v, k)).collect(),
        other => vec![flatten(other, "")],
    };
    paragraphs.join("\n\n")
}

fn flatten(value: &Value, path: &str) -> String {
    let mut lines = Vec::new();
    walk(value, path.to_string(), &mut lines);
    lines.join("\n")
}

fn walk(value: &Value, path: String, out: &mut Vec<String>) {
    let line = |v: &str| if path.is_empty() { v.to_string() } else { format!("{path}: {v}") };
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let child = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                walk(v, child, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                walk(v, format!("{path}[{i}]"), out);
            }
        }
        Value::Object(_) => out.push(line("{}")),
        Value::Array(_) => out.push(line("[]")),
        Value::String(s) => out.push(line(s)),
        Value::Null => out.push(line("null")),
        other => out.push(line(&other.to_string())),
    }
}

/// CSV (or TSV with `delimiter = b'\t'`): the first row names the columns; every later row
/// becomes `column: value` lines for its non-empty cells. Rows may be ragged.
pub fn csv(text: &str, delimiter: u8) -> Result<String, ExtractError> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .has_headers(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| ExtractError::Malformed(format!("CSV header: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut rows = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let record = record.map_err(|e| ExtractError::Malformed(format!("CSV row {}: {e}", n + 2)))?;
        let lines: Vec<String> = record
            .iter()
            .enumerate()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(i, v)| {
                let name = headers.get(i).filter(|h| !h.is_empty()).cloned().unwrap_or_else(|| format!("column {}", i + 1));
                format!("{name}: {}", v.trim())
            })
            .collect();
        if !lines.is_empty() {
            rows.push(lines.join("\n"));
        }
    }
    if rows.is_empty() {
        // A header and nothing else still says something.
        return Ok(headers.join(", "));
    }
    Ok(rows.join("\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_flattened_to_paths() {
        let text = json(r#"{"name": "Tidal pools", "tags": ["crab", "anemone"], "depth": {"min_m": 0.5, "max_m": null}, "empty": {}, "list": []}"#).unwrap();
        assert_eq!(
            text,
            "name: Tidal pools\n\ntags[0]: crab\ntags[1]: anemone\n\ndepth.min_m: 0.5\ndepth.max_m: null\n\nempty: {}\n\nlist: []"
        );
        assert_eq!(json(r#"[{"a": 1}, {"a": 2}]"#).unwrap(), "[0].a: 1\n\n[1].a: 2");
        assert_eq!(json("\"just a string\"").unwrap(), "just a string");
        assert_eq!(json("{not json"), None);
    }

    #[test]
    fn json_lines_are_paragraphs() {
        assert_eq!(json_lines("{\"a\": 1}\n\n{\"b\": [true]}\nnot json\n"), "a: 1\n\nb[0]: true\n\nnot json");
    }

    #[test]
    fn csv_rows_become_column_value_lines() {
        let text = csv("date,region,visitors\n2024-06-01,North,120\n2024-06-02,\"South, coast\",98\n\n2024-06-03,,7,extra\n", b',').unwrap();
        assert_eq!(
            text,
            "date: 2024-06-01\nregion: North\nvisitors: 120\n\n\
             date: 2024-06-02\nregion: South, coast\nvisitors: 98\n\n\
             date: 2024-06-03\nvisitors: 7\ncolumn 4: extra"
        );
        assert_eq!(csv("a\tb\n1\t2\n", b'\t').unwrap(), "a: 1\nb: 2");
        assert_eq!(csv("only,a,header\n", b',').unwrap(), "only, a, header");
    }

    #[test]
    fn an_unterminated_quote_keeps_what_it_can() {
        assert_eq!(csv("a,b\n1,\"unterminated\n", b',').unwrap(), "a: 1\nb: unterminated");
    }
}
