//! HTML -> readable text with html2text, after removing every element whose content is not
//! meant to be read: `script`, `style`, `template`, `noscript`, `iframe`, `object` and the
//! `head` — in any namespace, so `<svg><style>` goes too. html2text skips some of these itself,
//! but only in the HTML namespace; pruning the DOM first makes "no script or style text reaches
//! a pattern" a property of this module rather than of html2text's version.

use super::ExtractError;
use html2text::{Handle, RcDom};

const DROPPED: &[&str] = &["script", "style", "template", "noscript", "iframe", "object", "head"];

/// Wide enough that html2text never wraps a paragraph: chunking wants whole sentences.
const WIDTH: usize = 100_000;

pub fn extract(html: &str) -> Result<String, ExtractError> {
    let config = html2text::config::plain_no_decorate().no_table_borders().allow_width_overflow();
    let dom = config
        .parse_html(html.as_bytes())
        .map_err(|e| ExtractError::Malformed(format!("HTML could not be parsed: {e}")))?;
    prune(&dom);
    let tree = config
        .dom_to_render_tree(&dom)
        .map_err(|e| ExtractError::Malformed(format!("HTML could not be rendered: {e}")))?;
    let text = config
        .render_to_string(tree, WIDTH)
        .map_err(|e| ExtractError::Malformed(format!("HTML could not be rendered: {e}")))?;
    Ok(tidy(&text))
}

fn prune(dom: &RcDom) {
    // An explicit stack: deeply nested markup must not overflow ours.
    let mut stack: Vec<Handle> = vec![dom.document.clone()];
    while let Some(node) = stack.pop() {
        node.children.borrow_mut().retain(|child| !is_dropped(child));
        stack.extend(node.children.borrow().iter().cloned());
    }
}

fn is_dropped(node: &Handle) -> bool {
    match &node.data {
        html2text::Element { name, .. } => DROPPED.iter().any(|d| (*name.local).eq_ignore_ascii_case(d)),
        _ => false,
    }
}

/// Trailing spaces off every line, at most one blank line in a row.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines().map(str::trim_end) {
        if line.is_empty() {
            blank_run += 1;
            if blank_run > 1 || out.is_empty() {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_style_and_friends_never_reach_the_text() {
        let html = r#"<!DOCTYPE html><html><head><title>TITLE_SECRET</title>
<style>body { color: STYLE_SECRET; }</style><script>var x = "SCRIPT_SECRET_HEAD";</script></head>
<body><h1>Lighthouse keeping</h1>
<p>The keeper trims the <b>wick</b> at dusk.</p>
<script type="text/javascript">document.write("SCRIPT_SECRET_BODY")</script>
<STYLE>.x{content:"STYLE_SECRET_UPPER"}</STYLE>
<svg><style>.cls{fill:SVG_STYLE_SECRET}</style><text>svg label</text></svg>
<noscript>NOSCRIPT_SECRET</noscript><template><p>TEMPLATE_SECRET</p></template>
<ul><li>Fog horn drills</li><li>Lens polishing</li></ul>
<table><tr><th>Day</th><th>Task</th></tr><tr><td>Monday</td><td>Oil the clockwork</td></tr></table>
</body></html>"#;
        let text = extract(html).unwrap();
        for secret in ["SECRET", "color", "document.write", "fill:"] {
            assert!(!text.contains(secret), "{secret} leaked into:\n{text}");
        }
        for kept in ["Lighthouse keeping", "The keeper trims the wick at dusk.", "Fog horn drills", "Oil the clockwork", "Monday"] {
            assert!(text.contains(kept), "{kept} missing from:\n{text}");
        }
    }

    #[test]
    fn fragments_and_entities() {
        let text = extract("<p>caf&eacute; &amp; cr&egrave;me</p><p>second</p>").unwrap();
        assert_eq!(text, "café & crème\n\nsecond");
    }

    #[test]
    fn long_paragraphs_are_not_wrapped() {
        let sentence = "word ".repeat(400);
        let text = extract(&format!("<p>{sentence}</p>")).unwrap();
        assert_eq!(text.lines().count(), 1);
    }
}
