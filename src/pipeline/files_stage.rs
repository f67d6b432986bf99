//! The files stage in the run: every file the assistants and threads used goes through
//! `crate::files::Stage` (fetched and extracted once, chunked, mapped into each scope that used
//! it), and its records join the batches.

use super::Run;
use crate::app::RunError;
use crate::files::{FileCounts, FileRefs};
use crate::record::Record;
use crate::sink::Sink;
use futures::StreamExt;

impl Run<'_> {
    pub(super) async fn files_stage<S: Sink>(&mut self, sink: &mut S, mut refs: FileRefs, pending: &mut Vec<Record>) -> Result<FileCounts, RunError> {
        self.c.warnings.append(&mut refs.warnings);
        let (planned, warnings) = self.s.file_stage.plan(&refs).await?;
        self.c.warnings.extend(warnings);
        let mut counts = FileCounts { referenced: planned.len(), ..FileCounts::default() };
        let stage = self.s.file_stage.clone();
        let mut documents = stage.documents(planned);
        while let Some((file, document)) = documents.next().await {
            match document? {
                Err(warning) => {
                    counts.skipped += 1;
                    self.c.warnings.push(warning);
                }
                Ok(d) => {
                    counts.extracted += 1;
                    pending.extend(stage.records(&file, &d, &self.s.settings));
                }
            }
            self.process_full_batches(sink, pending).await?;
            if self.s.interrupt.is_set() {
                break;
            }
        }
        Ok(counts)
    }
}
