//! Progress on stderr for commands that read many things (`locks`, `doctor`): after a second of
//! silence, one line saying what is being read, redrawn in place and erased when the command
//! prints its result. Only when stderr is a terminal: scripts, pipes and CI logs get nothing.
//!
//! `LOCKREAPER_PROGRESS=always|never` overrides the terminal check (`always` is how the tests see
//! it without a terminal); `LOCKREAPER_PROGRESS_AFTER_MS` the one-second delay.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SPINNER: [char; 4] = ['|', '/', '-', '\\'];

/// Draws one frame: `\r` + "erase line", so the line is redrawn in place and never scrolls.
fn draw(spinner: char, text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K{spinner} {text}");
    let _ = err.flush();
}

/// A progress line that a background task draws while the command works.
pub struct Progress {
    phase: Option<Arc<Mutex<String>>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Whether the line was ever drawn (then it must be erased; else nothing is written).
    drawn: Arc<AtomicBool>,
}

impl Progress {
    /// Starts the progress line for a command (drawn only after the delay, only on a terminal).
    pub fn start(first_phase: &str) -> Progress {
        let enabled = match std::env::var("LOCKREAPER_PROGRESS").as_deref() {
            Ok("always") => true,
            Ok("never") => false,
            _ => std::io::stderr().is_terminal(),
        };
        if !enabled {
            return Progress {
                phase: None,
                task: None,
                drawn: Arc::new(AtomicBool::new(false)),
            };
        }
        let delay = std::env::var("LOCKREAPER_PROGRESS_AFTER_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map_or(Duration::from_secs(1), Duration::from_millis);
        let phase = Arc::new(Mutex::new(first_phase.to_owned()));
        let shown = Arc::clone(&phase);
        let drawn = Arc::new(AtomicBool::new(false));
        if delay.is_zero() {
            // No delay asked: the first frame now, so even a command faster than the task's first
            // turn shows (and erases) its line.
            draw(SPINNER[0], first_phase);
            drawn.store(true, Ordering::SeqCst);
        }
        let drawing = Arc::clone(&drawn);
        let task = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            for tick in 0usize.. {
                let text = shown.lock().map(|p| p.clone()).unwrap_or_default();
                draw(SPINNER[tick % SPINNER.len()], &text);
                drawing.store(true, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(120)).await;
            }
        });
        Progress {
            phase: Some(phase),
            task: Some(task),
            drawn,
        }
    }

    /// Says what the command is doing now.
    pub fn phase(&self, text: impl Into<String>) {
        if let Some(phase) = &self.phase {
            if let Ok(mut p) = phase.lock() {
                *p = text.into();
            }
        }
    }

    /// Erases the line (before the command prints its result).
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            if !self.drawn.load(Ordering::SeqCst) {
                return;
            }
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop();
    }
}
