//! End to end: files and vector stores. An account whose assistants and threads use documents
//! of every supported type (built here: PDF, DOCX, HTML, Markdown, text in five encodings,
//! JSON, CSV) plus files that cannot be migrated (a broken PDF, an image, a failed vector-store
//! file, a deleted file, one OpenAI will not serve) is migrated over real HTTP from the stand-in
//! server; then a question about each document must recall one of its chunks in the right
//! scope: with Engramia 0.6.6 itself for some, and for all by re-embedding every stored pattern
//! from its `task` (what `engramia reindex` does) and ranking by cosine.

mod common;

#[path = "data/files/generate.rs"]
mod generate;

use base64::Engine as _;
use common::*;
use engram_standin::{Account, Options, embed_text};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

const RESEARCH: &str = "Research Desk";
const HELP: &str = "Help Center";
const DAY: i64 = 1_718_000_000;

/// Secrets that live only inside `<script>` and `<style>` of lighthouse.html (one in an SVG's
/// `<style>`, which html2text alone would print).
const HTML_SECRETS: &[&str] = &["SCRIPT_SECRET_TOKEN", "STYLE_SECRET_COLOUR", "trackVisitor", "SVG_STYLE_SECRET"];

/// A document: its file, where it is used, and a question its content answers.
struct Doc {
    id: &'static str,
    filename: &'static str,
    scope: &'static str,
    question: &'static str,
    /// A phrase of the paragraph that answers the question.
    answer: &'static str,
}

const DOCS: &[Doc] = &[
    Doc { id: "file-volcano", filename: "volcano.pdf", scope: RESEARCH, question: "which gas do the volcano sensors measure near the crater", answer: "sulphur dioxide" },
    Doc { id: "file-orchids", filename: "orchids.md", scope: RESEARCH, question: "how often should orchids be watered", answer: "once a week" },
    Doc { id: "file-telescope", filename: "telescope.json", scope: RESEARCH, question: "what is the telescope mirror diameter", answer: "mirror_diameter_mm: 200" },
    Doc { id: "file-tides", filename: "tide-table.csv", scope: RESEARCH, question: "high tide time at Port Mellon harbour", answer: "harbour: Port Mellon" },
    Doc { id: "file-tides", filename: "tide-table.csv", scope: HELP, question: "high tide time at Port Mellon harbour", answer: "harbour: Port Mellon" },
    Doc { id: "file-chess", filename: "chess-openings.txt", scope: RESEARCH, question: "which chess opening starts with the queen pawn gambit", answer: "Queen's Gambit" },
    Doc { id: "file-kite", filename: "kite.txt", scope: RESEARCH, question: "how long should the kite bridle line be", answer: "bridle line" },
    Doc { id: "file-astro", filename: "astronomy-notes.md", scope: RESEARCH, question: "when does the Perseid meteor shower peak", answer: "Perseid" },
    Doc { id: "file-sourdough", filename: "sourdough.docx", scope: HELP, question: "how long should the sourdough starter ferment", answer: "ferment" },
    Doc { id: "file-lighthouse", filename: "lighthouse.html", scope: HELP, question: "when does the lighthouse keeper trim the wick", answer: "trims the wick" },
    Doc { id: "file-bees", filename: "beekeeping.txt", scope: HELP, question: "how do beekeepers calm the bees with smoke", answer: "smoke" },
    Doc { id: "file-ferry", filename: "ferry.txt", scope: HELP, question: "ferry departure times to the island", answer: "departs" },
    Doc { id: "file-fromage", filename: "fromage.txt", scope: HELP, question: "how many months is comté cheese aged", answer: "Comté" },
    Doc { id: "file-glacier", filename: "glacier.txt", scope: HELP, question: "how many metres per year does the glacier retreat", answer: "metres per year" },
    Doc { id: "file-compost", filename: "compost.txt", scope: HELP, question: "how often should the compost pile be turned", answer: "Turn the pile" },
    Doc { id: "file-origami", filename: "origami.txt", scope: HELP, question: "origami crane folding steps", answer: "crane" },
];

/// Files that must be skipped: id, filename, warning kind.
const SKIPPED: &[(&str, &str, &str)] = &[
    ("file-corrupt", "corrupt.pdf", "file_malformed"),
    ("file-legacy", "legacy.docx", "file_failed"),
    ("file-photo", "photo.png", "file_unextractable"),
    ("file-gone", "", "file_missing"),
    ("file-secret", "secret-plan.pdf", "file_unavailable"),
];

/// Three paragraphs on three sub-topics, so that a question picks one chunk.
fn paragraphs(topic: &str, a: &str, b: &str, c: &str) -> Vec<String> {
    vec![
        format!("{topic}. {a} This paragraph is about the first part of the {topic} notes and nothing else."),
        format!("{b} The second part of the {topic} notes covers this, with enough words to fill a chunk of its own."),
        format!("{c} Finally the third part of the {topic} notes ends here with a few closing remarks."),
    ]
}

fn file(id: &str, name: &str, purpose: &str, offset: i64, bytes: Option<&[u8]>) -> Value {
    let mut f = json!({"file": {"id": id, "created_at": DAY + offset, "filename": name, "purpose": purpose}});
    if let Some(b) = bytes {
        f["content_base64"] = json!(base64::engine::general_purpose::STANDARD.encode(b));
    }
    f
}

fn text_part(value: &str, annotations: Vec<Value>) -> Value {
    json!({"type": "text", "text": {"value": value, "annotations": annotations}})
}

/// A `【n:m†source】` marker at the end of `text`, with its annotation.
fn cite(text: &mut String, kind: &str, file_id: &str, n: usize) -> Value {
    let marker = format!("【{n}:0†source】");
    let start = text.chars().count();
    text.push_str(&marker);
    let end = text.chars().count();
    json!({"type": kind, "text": marker, "start_index": start, "end_index": end, kind: {"file_id": file_id}})
}

/// The account: two assistants with vector stores and code-interpreter files, two threads with
/// attachments, an image, citations and a generated-file link.
fn account() -> Value {
    let volcano = paragraphs(
        "Volcano monitoring",
        "Seismometers around the cone record tremor days before an eruption.",
        "Gas sensors near the crater measure sulphur dioxide every ten minutes.",
        "Evacuation drills for the three villages happen each spring.",
    );
    let volcano_pages: Vec<Vec<&str>> = volcano.iter().map(|p| wrap(p)).collect();
    let volcano_pages: Vec<&[&str]> = volcano_pages.iter().map(Vec::as_slice).collect();
    let sourdough = paragraphs(
        "Sourdough baking",
        "Feed the starter with equal weights of rye flour and water.",
        "Let the sourdough starter ferment for twelve hours at room temperature before baking.",
        "Bake the loaf in a covered pot at 250 degrees.",
    );
    let sourdough: Vec<&str> = sourdough.iter().map(String::as_str).collect();
    let lighthouse = format!(
        r#"<!DOCTYPE html><html><head><title>Keeper</title><style>body {{ color: STYLE_SECRET_COLOUR; }}</style>
<script>function trackVisitor() {{ send("SCRIPT_SECRET_TOKEN"); }}</script></head><body>
<h1>Lighthouse keeping</h1><p>{}</p><script>trackVisitor()</script><p>{}</p><style>.x {{ content: "STYLE_SECRET_COLOUR" }}</style>
<svg width="10" height="10"><style>.c {{ fill: SVG_STYLE_SECRET; }}</style><circle r="4"/></svg><p>{}</p></body></html>"#,
        "The keeper trims the wick of the lamp every evening at dusk and polishes the lens.",
        "Fog horn drills are held on Mondays, and the log book records every passing ship.",
        "Paraffin is stored in the shed behind the tower, away from the keeper's cottage."
    );
    let orchids = "# Orchid care\n\n## Watering\n\nWater orchids once a week with rain water, never with cold tap water. Let the pot drain fully.\n\n## Light\n\nOrchids like bright indirect light; a window facing east is ideal for the leaves.\n\n## Repotting\n\nRepot orchids every two years in fresh bark when the roots crowd the pot.";
    let telescope = json!({
        "telescope": {"name": "Backyard reflector", "mirror_diameter_mm": 200, "focal_length_mm": 1200, "mount": "equatorial"},
        "maintenance": [{"task": "collimate the mirrors", "every": "month"}, {"task": "clean the eyepieces", "every": "season"}]
    });
    let mut tides = String::from("harbour,date,high_tide,low_tide\n");
    for (i, h) in ["Port Mellon", "Baymouth", "Kelp Point", "Saltcombe"].iter().enumerate() {
        for d in 1..=3 {
            tides.push_str(&format!("{h},2024-06-0{d},0{}:1{d},1{}:4{d}\n", 4 + i, 2 + i));
        }
    }
    let chess = "Chess openings for beginners.\n\nThe Queen's Gambit starts with the queen pawn to d4 and offers the c-pawn.\n\nThe Sicilian Defence answers the king pawn with c5 and leads to sharp games.";
    let kite = "Kite building notes.\n\nThe bridle line should be about three times the spine length, tied at two points.\n\nUse ripstop nylon for the sail and carbon rods for the spars.";
    let bees = "Beekeeping basics.\n\nBeekeepers calm the bees with cool smoke from a smoker before opening the hive.\n\nHoney is harvested in late summer when the frames are capped.";
    let ferry = "\u{FEFF}Island ferry timetable.\n\nThe ferry departs from the mainland pier at 07:30, 12:15 and 18:45 every day.\n\nTickets are sold on board; bicycles travel free.";
    let fromage = "Fromages de France.\n\nLe Comté est affiné pendant douze à dix-huit mois dans des caves fraîches du Jura.\n\nLe Roquefort mûrit dans les grottes naturelles de Combalou.";
    let origami = "Origami notes.\n\nThe crane is folded from a square base: fold the petal folds, then narrow the neck and tail and shape the head.\n\nA waterbomb base starts the paper balloon.";
    let glacier = "Glacier survey 2024.\n\nThe glacier tongue retreated twenty-three metres per year over the last decade, measured with GPS stakes.\n\nMeltwater discharge peaks in late July.";

    json!({
        "assistants": [
            {"id": "asst_research", "created_at": DAY, "name": RESEARCH,
             "tools": [{"type": "file_search"}, {"type": "code_interpreter"}],
             "tool_resources": {"file_search": {"vector_store_ids": ["vs_research"]},
                                "code_interpreter": {"file_ids": ["file-telescope", "file-tides", "file-chess", "file-kite", "file-corrupt"]}}},
            {"id": "asst_help", "created_at": DAY, "name": HELP,
             "tools": [{"type": "file_search"}, {"type": "code_interpreter"}],
             "tool_resources": {"file_search": {"vector_store_ids": ["vs_help"]},
                                "code_interpreter": {"file_ids": ["file-sourdough", "file-lighthouse", "file-ferry", "file-origami", "file-tides"]}}}
        ],
        "threads": [thread_help(), thread_research()],
        "files": [
            file("file-volcano", "volcano.pdf", "assistants_output", 1, Some(&generate::pdf(&volcano_pages))),
            file("file-orchids", "orchids.md", "assistants", 2, None),
            file("file-legacy", "legacy.docx", "assistants", 3, None),
            file("file-telescope", "telescope.json", "assistants_output", 4, Some(telescope.to_string().as_bytes())),
            file("file-tides", "tide-table.csv", "assistants_output", 5, Some(tides.as_bytes())),
            file("file-chess", "chess-openings.txt", "assistants_output", 6, Some(&generate::utf16(chess, true, true))),
            file("file-kite", "kite.txt", "assistants_output", 7, Some(&generate::utf16(kite, true, false))),
            file("file-corrupt", "corrupt.pdf", "assistants_output", 8, Some(&generate::pdf_with_missing_font("Nothing to see"))),
            file("file-sourdough", "sourdough.docx", "assistants_output", 9, Some(&generate::docx(&sourdough))),
            file("file-lighthouse", "lighthouse.html", "assistants_output", 10, Some(lighthouse.as_bytes())),
            file("file-bees", "beekeeping.txt", "assistants_output", 11, Some(bees.as_bytes())),
            file("file-ferry", "ferry.txt", "assistants_output", 12, Some(ferry.as_bytes())),
            file("file-fromage", "fromage.txt", "assistants_output", 13, Some(&generate::latin1(fromage))),
            file("file-origami", "origami.txt", "assistants_output", 14, Some(&generate::utf16(origami, false, true))),
            file("file-glacier", "glacier.txt", "assistants", 15, None),
            file("file-compost", "compost.txt", "assistants", 16, None),
            file("file-astro", "astronomy-notes.md", "assistants", 17, None),
            file("file-photo", "photo.png", "vision", 18, Some(&generate::png())),
            file("file-secret", "secret-plan.pdf", "assistants", 19, None),
        ],
        "vector_stores": [
            {"vector_store": {"id": "vs_research", "created_at": DAY, "name": "Research"},
             "files": [
                {"vector_store_file": {"id": "file-orchids", "created_at": DAY + 20}, "parsed_text": orchids},
                // In the store without parsed text: the raw download is used instead.
                {"vector_store_file": {"id": "file-volcano", "created_at": DAY + 21}},
                {"vector_store_file": {"id": "file-legacy", "created_at": DAY + 22, "status": "failed",
                  "last_error": {"code": "invalid_file", "message": "The file could not be parsed because it is password-protected."}}}
             ]},
            {"vector_store": {"id": "vs_help", "created_at": DAY, "name": "Help"},
             "files": [
                {"vector_store_file": {"id": "file-glacier", "created_at": DAY + 23}, "parsed_text": glacier},
                {"vector_store_file": {"id": "file-bees", "created_at": DAY + 24}}
             ]}
        ]
    })
}

/// The compost and astronomy notes are only in `[files] local_dir`.
fn local_copies(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("compost.txt"),
        "Garden compost guide.\n\nTurn the pile every two weeks with a fork so that air reaches the middle.\n\nMix green kitchen scraps with brown leaves in equal parts.",
    )
    .unwrap();
    std::fs::write(
        dir.join("file-astro.md"),
        "# Night sky notes\n\n## Meteor showers\n\nThe Perseid meteor shower peaks around the twelfth of August, best after midnight.\n\n## Planets\n\nJupiter is bright in the evening sky all autumn.",
    )
    .unwrap();
}

fn thread_help() -> Value {
    let mut answer = String::from("The warranty is in the attached notes. See the plan ");
    let a1 = cite(&mut answer, "file_path", "file-secret", 1);
    answer.push_str(" and the old guide ");
    let a2 = cite(&mut answer, "file_citation", "file-gone", 2);
    json!({
        // The thread's own resources: fromage.txt, for the thread's assistant (the help desk).
        "thread": {"id": "thread_help1", "created_at": DAY + 100,
                   "tool_resources": {"code_interpreter": {"file_ids": ["file-fromage"]}}},
        "messages": [
            {"id": "msg_h1", "created_at": DAY + 101, "role": "user", "content": [text_part("How do I start a compost heap? Here are my notes and a photo.", vec![])],
             "attachments": [{"file_id": "file-compost", "tools": [{"type": "file_search"}]}]},
            {"id": "msg_h2", "created_at": DAY + 102, "role": "user", "content": [{"type": "image_file", "image_file": {"file_id": "file-photo", "detail": "auto"}}]},
            {"id": "msg_h3", "created_at": DAY + 103, "role": "assistant", "assistant_id": "asst_help", "run_id": "run_h1",
             "content": [text_part(&answer, vec![a1, a2])]}
        ],
        "runs": [{"run": {"id": "run_h1", "created_at": DAY + 102, "assistant_id": "asst_help"}}]
    })
}

fn thread_research() -> Value {
    json!({
        "thread": {"id": "thread_res1", "created_at": DAY + 200},
        "messages": [
            {"id": "msg_r1", "created_at": DAY + 201, "role": "user", "content": "What do my sky notes say about meteors?",
             "attachments": [{"file_id": "file-astro", "tools": [{"type": "file_search"}]}]},
            {"id": "msg_r2", "created_at": DAY + 202, "role": "assistant", "assistant_id": "asst_research", "run_id": "run_r1",
             "content": "Your notes mention a meteor shower in August."}
        ],
        "runs": [{"run": {"id": "run_r1", "created_at": DAY + 201, "assistant_id": "asst_research"}}]
    })
}

/// Lines of at most ~80 characters for a PDF page.
fn wrap(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut last_space = 0;
    for (i, c) in text.char_indices() {
        if c == ' ' {
            if i - start > 80 {
                lines.push(&text[start..last_space]);
                start = last_space + 1;
            }
            last_space = i;
        }
    }
    lines.push(&text[start..]);
    lines
}

struct Setup {
    server: Server,
    ws: Workspace,
}

fn setup(files_section: &str) -> Setup {
    let account = Account::from_json(account()).expect("the test account is valid");
    let server = Server::start(account, Options { api_key: Some(TEST_KEY.into()), ..Options::default() });
    let ws = Workspace::new(
        &server.base_url,
        "",
        &format!(
            "[embedding]\nmodel = \"text-embedding-3-small\"\n[scope]\ntenant = \"lab\"\nproject = \"{{assistant.name}}\"\n[files]\n{files_section}\n"
        ),
    );
    std::fs::write(ws.path("thread_ids.txt"), "thread_help1\nthread_res1\n").unwrap();
    local_copies(&ws.path("copies"));
    Setup { server, ws }
}

const FILES_SECTION: &str = "local_dir = \"copies\"\nchunk_tokens = 60\nchunk_overlap = 10\n";

/// Every pattern of a scope directory: key -> pattern.
fn patterns(scope_dir: &Path) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(scope_dir.join("patterns")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().trim_end_matches(".json").to_string();
        out.insert(format!("patterns/{name}"), serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap());
    }
    out
}

/// Whitespace collapsed (PDF lines break anywhere).
fn words(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Ranks a scope's patterns for `question` by re-embedding each `task` with the stand-in's
/// embedding (as `engramia reindex` would) — the stored vectors are not used.
fn reindexed_recall<'a>(patterns: &'a BTreeMap<String, Value>, question: &str) -> Vec<(f32, &'a Value)> {
    let q = embed_text(question, 1536);
    let mut ranked: Vec<(f32, &Value)> =
        patterns.values().map(|p| (cosine(&q, &embed_text(p["task"].as_str().unwrap(), 1536)), p)).collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    ranked
}

fn scope_dir(target: &Path, project: &str) -> std::path::PathBuf {
    target.join("lab").join(project.replace(' ', "_"))
}

#[test]
fn every_document_is_recalled_by_its_content_in_the_right_scope() {
    let Setup { server, ws } = setup(FILES_SECTION);
    let target = ws.path("engramia_data");
    let report = migrate_ok(&ws, &target, &[]);

    let research = patterns(&scope_dir(&target, RESEARCH));
    let help = patterns(&scope_dir(&target, HELP));
    for doc in DOCS {
        let (scope, other) = if doc.scope == RESEARCH { (&research, &help) } else { (&help, &research) };
        let ranked = reindexed_recall(scope, doc.question);
        let top3: Vec<&Value> = ranked.iter().take(3).map(|(_, p)| *p).collect();
        let hit = top3.iter().find(|p| p["design"]["openai"]["file_id"] == doc.id).unwrap_or_else(|| {
            panic!(
                "{} ({}): no chunk in the top 3 for {:?}; got {:#?}",
                doc.filename,
                doc.scope,
                doc.question,
                top3.iter().map(|p| &p["task"]).collect::<Vec<_>>()
            )
        });
        assert!(words(hit["design"]["code"].as_str().unwrap()).contains(doc.answer), "{}: the best chunk lacks {:?}: {hit:#}", doc.filename, doc.answer);
        let o = &hit["design"]["openai"];
        assert_eq!(o["kind"], "file_chunk");
        assert_eq!(o["filename"], doc.filename);
        assert!(hit["task"].as_str().unwrap().starts_with(&format!("{}: ", doc.filename)));
        assert!(o["chunk_index"].as_u64().unwrap() < o["chunk_count"].as_u64().unwrap());
        // Chunks land in the scopes that used the file, and only there.
        let elsewhere = DOCS.iter().any(|d| d.id == doc.id && d.scope != doc.scope);
        assert_eq!(other.values().any(|p| p["design"]["openai"]["file_id"] == doc.id), elsewhere, "{}", doc.filename);
    }

    // Provenance: vector-store files name their store, the others null; timestamps are the file's.
    let chunk = |scope: &BTreeMap<String, Value>, id: &str| {
        scope.values().find(|p| p["design"]["openai"]["file_id"] == id).cloned().unwrap_or_else(|| panic!("no chunk of {id}"))
    };
    assert_eq!(chunk(&research, "file-orchids")["design"]["openai"]["vector_store_id"], "vs_research");
    assert_eq!(chunk(&research, "file-volcano")["design"]["openai"]["vector_store_id"], "vs_research");
    assert_eq!(chunk(&help, "file-sourdough")["design"]["openai"]["vector_store_id"], Value::Null);
    assert_eq!(chunk(&help, "file-sourdough")["timestamp"], json!((DAY + 9) as f64));
    assert_eq!(chunk(&help, "file-sourdough")["success_score"], json!(5.0));

    // The shared CSV: fetched once, written to both scopes under different keys.
    let keys = |scope: &BTreeMap<String, Value>| -> Vec<String> {
        scope.iter().filter(|(_, p)| p["design"]["openai"]["file_id"] == "file-tides").map(|(k, _)| k.clone()).collect()
    };
    let (rk, hk) = (keys(&research), keys(&help));
    assert!(!rk.is_empty() && rk.len() == hk.len());
    assert!(rk.iter().all(|k| !hk.contains(k)), "keys collide across scopes");
    // Downloads: every distinct file that reached step 2 once (neither the two with parsed
    // text nor the deleted one); a second download of the shared CSV would add one.
    let stats = server.stats();
    let referenced = report["files"]["referenced"].as_u64().unwrap();
    assert_eq!(referenced, 20, "{:#}", report["files"]);
    assert_eq!(stats.by_route["GET /files/{id}/content"], referenced - 3, "{:#?}", stats.by_route);
    assert_eq!(stats.by_route["GET /files/{id}"], referenced, "one lookup per file: {:#?}", stats.by_route);
    assert_eq!(report["files"]["extracted"].as_u64().unwrap(), 15);
    assert_eq!(report["files"]["skipped"].as_u64().unwrap(), SKIPPED.len() as u64);

    // Every stored vector is the embedding of the pattern's task.
    let stored: BTreeMap<String, Vec<f32>> =
        serde_json::from_slice(&std::fs::read(scope_dir(&target, HELP).join("_embeddings.json")).unwrap()).unwrap();
    for (key, p) in &help {
        let v = &stored[key];
        assert!(cosine(v, &embed_text(p["task"].as_str().unwrap(), 1536)) > 0.999, "{key}");
    }

    // Engramia 0.6.6 itself recalls the PDF, the DOCX and the HTML chunks by embedding.
    for doc in DOCS.iter().filter(|d| ["volcano.pdf", "sourdough.docx", "lighthouse.html"].contains(&d.filename)) {
        let recalled = readback(
            "engramia_json_recall.py",
            &server.base_url,
            &["--data", target.to_str().unwrap(), "--tenant", "lab", "--project", doc.scope, "--question", doc.question, "--limit", "3"],
        );
        assert_eq!(recalled["used_keyword_fallback"], false, "{recalled:#}");
        let ids: Vec<&Value> = recalled["matches"].as_array().unwrap().iter().map(|m| &m["design"]["openai"]["file_id"]).collect();
        assert!(ids.contains(&&json!(doc.id)), "{}: Engramia's top 3 for {:?}: {recalled:#}", doc.filename, doc.question);
        assert!(recalled["warnings"].as_array().unwrap().is_empty(), "{recalled:#}");
    }
    // engram verify agrees: every record, chunks included, is recalled in its scope.
    verify_ok(&ws, target.to_str().unwrap());
}

#[test]
fn no_script_or_style_text_reaches_any_written_file() {
    let Setup { server: _server, ws } = setup(FILES_SECTION);
    let target = ws.path("engramia_data");
    let report = migrate_ok(&ws, &target, &[]);
    let files = snapshot(&target);
    assert!(files.len() > 10);
    for (path, bytes) in &files {
        let text = String::from_utf8_lossy(bytes);
        for secret in HTML_SECRETS {
            assert!(!text.contains(secret), "{secret} in {}", path.display());
        }
    }
    let report_text = report.to_string();
    for secret in HTML_SECRETS {
        assert!(!report_text.contains(secret), "{secret} in the report");
    }
    // The page's visible text did arrive.
    assert!(files.values().any(|b| String::from_utf8_lossy(b).contains("trims the wick")));
}

#[test]
fn every_skipped_file_is_a_warning_with_its_id_name_and_reason_and_the_run_succeeds() {
    let Setup { server: _server, ws } = setup(FILES_SECTION);
    let target = ws.path("engramia_data");
    let report_path = ws.path("report.json");
    let out = run(engram()
        .args(["migrate", "--config"])
        .arg(ws.mapping())
        .arg("--target")
        .arg(&target)
        .arg("--report")
        .arg(&report_path));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // pdf-extract panics on corrupt.pdf: inside the child process, never on engram's stderr.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let report: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let warnings = report["warnings"].as_array().unwrap();
    for (id, filename, kind) in SKIPPED {
        let w = warnings
            .iter()
            .find(|w| w["id"] == *id && w["kind"].as_str().unwrap().starts_with("file_"))
            .unwrap_or_else(|| panic!("no file warning for {id}: {warnings:#?}"));
        assert_eq!(w["kind"], *kind, "{w:#}");
        let message = w["message"].as_str().unwrap();
        assert!(message.contains(filename), "{id}: the message lacks the filename: {message}");
    }
    let by_id = |id: &str| {
        let w = warnings.iter().find(|w| w["id"] == id && w["kind"].as_str().unwrap().starts_with("file_")).unwrap();
        w["message"].as_str().unwrap().to_string()
    };
    assert!(by_id("file-legacy").contains("password-protected"), "{}", by_id("file-legacy"));
    assert!(by_id("file-secret").contains("local_dir"), "{}", by_id("file-secret"));
    assert!(by_id("file-photo").contains("image"), "{}", by_id("file-photo"));
    assert!(by_id("file-gone").contains("404"), "{}", by_id("file-gone"));
    // Nothing else was skipped, and each skipped file is reported once.
    let file_warnings: Vec<&Value> = warnings.iter().filter(|w| w["kind"].as_str().unwrap().starts_with("file_")).collect();
    assert_eq!(file_warnings.len(), SKIPPED.len(), "{file_warnings:#?}");
    // The summary says it too.
    assert!(String::from_utf8_lossy(&out.stdout).contains("files    20 referenced, 15 extracted, 5 skipped"), "{}", text(&out));
}

#[test]
fn dry_run_fetches_and_extracts_and_predicts_the_real_run_and_a_rerun_changes_nothing() {
    let Setup { server, ws } = setup(FILES_SECTION);
    let target = ws.path("engramia_data");
    let plan = migrate_ok(&ws, &target, &["--dry-run"]);
    assert!(!target.exists());
    assert_eq!(server.stats().embedding_requests, 0);
    let real = migrate_ok(&ws, &target, &[]);
    assert_eq!(plan["scopes"], real["scopes"]);
    assert_eq!(plan["files"], real["files"]);
    for k in ["inputs", "tokens", "requests"] {
        assert_eq!(plan["embedding"][k], real["embedding"][k], "{k}");
    }
    let before = snapshot(&target);
    let again = migrate_ok(&ws, &target, &[]);
    assert_eq!(snapshot(&target), before);
    for s in again["scopes"].as_array().unwrap() {
        assert_eq!((s["create"].as_u64(), s["update"].as_u64()), (Some(0), Some(0)), "{s:#}");
    }
}

#[test]
fn a_file_over_max_bytes_is_skipped_without_downloading_it() {
    let Setup { server, ws } = setup("local_dir = \"copies\"\nmax_bytes = 400\n");
    let target = ws.path("engramia_data");
    let report = migrate_ok(&ws, &target, &[]);
    let warnings = report["warnings"].as_array().unwrap();
    let too_large: Vec<&str> =
        warnings.iter().filter(|w| w["kind"] == "file_too_large").map(|w| w["id"].as_str().unwrap()).collect();
    // The PDF, the DOCX and the HTML are over 400 bytes; the small notes are not.
    for id in ["file-volcano", "file-sourdough", "file-lighthouse"] {
        assert!(too_large.contains(&id), "{id} not reported: {warnings:#?}");
    }
    assert!(!too_large.contains(&"file-compost"), "{warnings:#?}");
    let w = warnings.iter().find(|w| w["id"] == "file-volcano").unwrap();
    assert!(w["message"].as_str().unwrap().contains("volcano.pdf") && w["message"].as_str().unwrap().contains("max_bytes"), "{w:#}");
    // Known to be too large from GET /files/{id}: their content was never requested. Without
    // the limit 17 files are downloaded (see the first test).
    let downloads = server.stats().by_route["GET /files/{id}/content"];
    assert_eq!(downloads, 17 - too_large.len() as u64, "{too_large:?}");
}

#[test]
fn the_demo_account_now_brings_its_documents_into_the_docs_assistant_scope() {
    let server = Server::demo();
    let ws = Workspace::demo(&server.base_url);
    let target = ws.path("engramia_data");
    let report = migrate_ok(&ws, &target, &[]);
    assert_eq!(report["files"], json!({"referenced": 6, "extracted": 3, "skipped": 3}), "{report:#}");
    let docs = patterns(&target.join("acme/Docs_Assistant"));
    let chunked: std::collections::BTreeSet<&str> = docs
        .values()
        .filter(|p| p["design"]["openai"]["kind"] == "file_chunk")
        .map(|p| p["design"]["openai"]["filename"].as_str().unwrap())
        .collect();
    assert_eq!(chunked, ["api-keys-guide.pdf", "manual.md", "usage_2024-06.csv"].into(), "{report:#}");
    for other in ["Support_Bot", "Weather_Helper"] {
        assert!(patterns(&target.join("acme").join(other)).values().all(|p| p["design"]["openai"]["kind"] != "file_chunk"));
    }
    // Questions about the documents' content recall their chunks among the 56 onboarding answers.
    for (question, filename) in [
        ("which base URL do EU projects use for the Acme API", "manual.md"),
        ("how many requests did the mobile-app project make on 2024-06-14", "usage_2024-06.csv"),
        ("rotating keys without downtime with an overlap window", "api-keys-guide.pdf"),
    ] {
        let ranked = reindexed_recall(&docs, question);
        let top3: Vec<&Value> = ranked.iter().take(3).map(|(_, p)| *p).collect();
        assert!(
            top3.iter().any(|p| p["design"]["openai"]["filename"] == filename),
            "{question}: {:#?}",
            top3.iter().map(|p| &p["task"]).collect::<Vec<_>>()
        );
    }
    let recalled = readback(
        "engramia_json_recall.py",
        &server.base_url,
        &["--data", target.to_str().unwrap(), "--tenant", "acme", "--project", "Docs Assistant", "--question",
          "how many requests did the mobile-app project make on 2024-06-14", "--limit", "3"],
    );
    assert_eq!(recalled["used_keyword_fallback"], false, "{recalled:#}");
    assert!(
        recalled["matches"].as_array().unwrap().iter().any(|m| m["design"]["openai"]["filename"] == "usage_2024-06.csv"),
        "{recalled:#}"
    );
}
