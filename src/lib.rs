//! engram: migrate OpenAI Assistants data into Engramia.
//!
//! The pipeline (see DESIGN.md): Source -> Extract -> Map -> Plan -> Embed -> Sink. Each stage
//! is a module; `run` wires them for `engram migrate`.

pub mod agents;
pub mod cli;
pub mod config;
pub mod embed;
pub mod export;
pub mod extract;
pub mod init;
pub mod map;
pub mod model;
pub mod plan;
pub mod progress;
pub mod record;
pub mod rejects;
pub mod report;
pub mod run;
pub mod signal;
pub mod sink;
pub mod source;
pub mod standin;
pub mod verify;
pub mod version;
