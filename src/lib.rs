//! engram: migrate OpenAI Assistants data into Engramia.
//!
//! The pipeline (see DESIGN.md): Source -> Extract -> Map -> Plan -> Embed -> Sink. Each stage
//! is a module; `run` wires them for `engram migrate`.

pub mod config;
pub mod map;
pub mod model;
pub mod record;
pub mod standin;
