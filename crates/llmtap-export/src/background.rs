//! Background work yields to traffic: the threads that record and export spans run at a lower
//! priority than the threads that forward calls or run the application.
//!
//! On a proxy given one core, the span exporter's batches (JSONL encoding and writes, OTLP
//! encoding and sends) ran at the forwarding worker's priority: a 512-span batch held the core
//! for milliseconds while calls waited. At niceness 10 a thread weighs about a tenth of a normal
//! one, so the kernel runs the forwarding worker whenever it has a call, and the export takes
//! the time left over. Not lower: export must still progress on a machine busy with other work
//! (a full queue drops spans, counted).

use std::cell::Cell;

/// Niceness of the background threads (Linux; best effort elsewhere).
pub const BACKGROUND_NICENESS: i32 = 10;

thread_local! {
    static LOWERED: Cell<bool> = const { Cell::new(false) };
}

/// Lowers the calling thread to [`BACKGROUND_NICENESS`], once per thread (later calls are a
/// thread-local read). Failures leave the thread as it was.
pub fn lower_thread_priority() {
    if LOWERED.with(|lowered| lowered.replace(true)) {
        return;
    }
    use thread_priority::{ThreadPriority, ThreadPriorityValue};
    // The crate's 0..=99 scale is mapped onto niceness 19..=-20: 22 is niceness 10.
    let background = ThreadPriorityValue::try_from(22u8).map(ThreadPriority::Crossplatform);
    if let Ok(priority) = background
        && let Err(err) = thread_priority::set_current_thread_priority(priority)
    {
        tracing::debug!(?err, "background thread keeps its priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Field 19 of /proc/thread-self/stat: the calling thread's niceness.
    fn own_niceness() -> Option<i32> {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(16)?
            .parse()
            .ok()
    }

    #[test]
    fn a_background_thread_runs_at_niceness_10_and_others_are_untouched() {
        let before = own_niceness();
        let lowered = std::thread::spawn(|| {
            lower_thread_priority();
            lower_thread_priority();
            own_niceness()
        })
        .join()
        .expect("thread");
        if cfg!(target_os = "linux") {
            // At least 10: a process started nicer than that stays as nice.
            assert!(
                lowered.is_some_and(|n| n >= BACKGROUND_NICENESS),
                "{lowered:?}"
            );
            assert_eq!(own_niceness(), before, "only the calling thread changes");
        }
    }
}
