//! Locking shared state that holds plain values.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, recovering from poisoning: the guarded values are plain data (caches, counters,
/// a rate-limit window) that a panic elsewhere cannot leave half-written.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
