//! The files stage, in one place: which files the account used and in which scopes (`refs`),
//! where each one's content comes from and its text (`fetch`, through `extract`), and its
//! chunks as records in every scope that used it (`Stage::records`, through `map::chunk`).
//! `engram migrate` runs the whole stage; `engram export` uses its fetching and references.

pub mod fetch;
pub mod refs;

pub use fetch::{Document, FileCounts, FileSource, PlannedFile, has_parsed_text};
pub use refs::FileRefs;

use crate::config::FilesConfig;
use crate::extract::{Limits, isolate::Isolation};
use crate::map::MapSettings;
use crate::map::chunk::{ChunkSettings, chunk_text, file_chunk_records};
use crate::record::{Record, Warning};
use crate::source::SourceError;
use futures::{Stream, StreamExt};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// fetch → extract → chunk → scope, with the run's settings.
pub struct Stage {
    files: Arc<FileSource>,
    chunking: ChunkSettings,
    isolation: Isolation,
    concurrency: usize,
}

impl Stage {
    /// `pdf_helper`: the engram binary, to parse PDFs in a child process a timeout can kill.
    pub fn new(files: Arc<FileSource>, config: &FilesConfig, concurrency: usize, pdf_helper: Option<PathBuf>) -> Stage {
        Stage {
            files,
            chunking: ChunkSettings { tokens: config.chunk_tokens, overlap: config.chunk_overlap },
            isolation: Isolation {
                timeout: Duration::from_secs(config.extract_timeout_secs),
                pdf_helper,
                limits: Limits { max_decompressed_bytes: config.max_bytes },
            },
            concurrency,
        }
    }

    /// Every referenced file, with where its content may come from; warnings for references
    /// that cannot be followed.
    pub async fn plan(&self, refs: &FileRefs) -> Result<(Vec<PlannedFile>, Vec<Warning>), SourceError> {
        self.files.plan(refs, self.concurrency).await
    }

    /// Each planned file fetched and extracted, in order, at most `concurrency` held at once
    /// (as threads are): its text, or the warning that says why it was skipped. `Err` only for
    /// what stops the run.
    pub fn documents(
        &self,
        planned: Vec<PlannedFile>,
    ) -> impl Stream<Item = (PlannedFile, Result<Result<Document, Warning>, SourceError>)> + '_ {
        let names: Arc<HashMap<String, usize>> = Arc::new(self.files.filename_counts(&planned));
        futures::stream::iter(planned)
            .map(move |file| {
                let (files, names, iso) = (self.files.clone(), names.clone(), &self.isolation);
                async move {
                    let document = files.document(&file, &names, iso).await;
                    (file, document)
                }
            })
            .buffered(self.concurrency)
    }

    /// A document's chunks as records, once in each scope that used the file.
    pub fn records(&self, file: &PlannedFile, document: &Document, settings: &MapSettings) -> Vec<Record> {
        let chunks = chunk_text(&document.text.text, document.text.is_markdown(), self.chunking);
        file_chunk_records(&document.doc, &chunks, &file.scopes, settings)
    }
}
