//! engram: migrate OpenAI Assistants data into Engramia.
//!
//! The pipeline (see DESIGN.md): Source -> Extract -> Map -> Plan -> Embed -> Sink. Each stage
//! is a module; `pipeline` runs them for `engram migrate` (see ARCHITECTURE.md).

pub mod agents;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod embed;
pub mod export;
pub mod extract;
pub mod files;
pub mod fs_atomic;
pub mod http;
pub mod init;
pub mod map;
pub mod model;
pub mod plan;
pub mod progress;
pub mod record;
pub mod redact;
pub mod shard;
pub mod status;
pub mod rejects;
pub mod report;
pub mod pipeline;
pub mod signal;
pub mod sync;
pub mod sink;
pub mod source;
pub mod verify;
pub mod version;
