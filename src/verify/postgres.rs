//! `engram verify` on Engramia's PostgreSQL + pgvector database.

use super::report::Fault;
use super::{Inspected, Ranked};
use crate::record::Scope;
use crate::run::RunError;
use std::collections::HashSet;

pub struct PgStore {
    url: String,
}

impl PgStore {
    pub async fn open(url: &str) -> Result<PgStore, RunError> {
        Err(RunError::Config(format!("engram verify does not read PostgreSQL yet ({})", crate::run::redact_url(url))))
    }
    pub fn describe(&self) -> String {
        crate::run::redact_url(&self.url)
    }
    pub async fn model(&mut self) -> Result<Option<String>, RunError> {
        Ok(None)
    }
    pub async fn scopes(&mut self) -> Result<Vec<Scope>, RunError> {
        Ok(Vec::new())
    }
    pub async fn store_faults(&mut self) -> Result<Vec<Fault>, RunError> {
        Ok(Vec::new())
    }
    pub async fn inspect(&mut self, _scope: &Scope, _dims: Option<usize>) -> Result<Inspected, RunError> {
        unreachable!()
    }
    pub async fn search(&mut self, _scope: &Scope, _q: &[Vec<f32>], _k: usize, _l: &HashSet<&str>) -> Result<Result<Vec<Ranked>, String>, RunError> {
        unreachable!()
    }
}
