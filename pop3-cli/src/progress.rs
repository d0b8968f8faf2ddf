//! The progress line of `fetch` on a terminal: as wide as the terminal is
//! now, never wider, so that a narrow window or a resize leaves no broken
//! or stale lines behind.
//!
//! indicatif draws it (rate limiting, clearing, hiding when stderr is not
//! a terminal); this module decides what fits ([`line`]), asking the
//! terminal its width at every redraw.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressState, ProgressStyle};

use crate::fetch::human;

/// The width assumed when the terminal does not say.
const DEFAULT_WIDTH: usize = 80;

/// The widest bar drawn, however wide the terminal.
const MAX_BAR: usize = 30;

/// The narrowest bar worth drawing (between its brackets).
const MIN_BAR: usize = 5;

/// What the line shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Facts {
    /// Messages done (stored or failed).
    pub(crate) done: usize,
    /// Messages to fetch.
    pub(crate) messages: usize,
    /// Bytes received.
    pub(crate) bytes: u64,
    /// Bytes expected (the sizes LIST gave).
    pub(crate) total_bytes: u64,
    /// Bytes per second lately.
    pub(crate) per_sec: f64,
    /// Time left, if it can be told.
    pub(crate) eta: Option<Duration>,
}

/// The progress line for a terminal `width` columns wide: at most
/// `width - 1` columns (the last column of a line makes some terminals wrap),
/// dropping first the rate, then the time left, then the bar, then the
/// bytes, as the width shrinks.
pub(crate) fn line(width: usize, facts: &Facts) -> String {
    let room = width.saturating_sub(1);
    let count = format!("{}/{}", facts.done, facts.messages);
    let bytes = format!("{}/{}", human(facts.bytes), human(facts.total_bytes));
    let rate = format!("{}/s", human(facts.per_sec.max(0.0) as u64));
    let eta = facts.eta.map(eta_text);
    let choices: [Vec<&str>; 4] = [
        [bytes.as_str(), rate.as_str()]
            .into_iter()
            .chain(eta.as_deref())
            .collect(),
        [bytes.as_str()].into_iter().chain(eta.as_deref()).collect(),
        vec![bytes.as_str()],
        Vec::new(),
    ];
    for (with_bar, parts) in choices
        .iter()
        .flat_map(|parts| [(true, parts), (false, parts)])
    {
        let mut text = count.clone();
        let tail: usize = parts.iter().map(|p| 1 + p.chars().count()).sum();
        if with_bar {
            // " [" + bar + "]"
            let bar_room = room.saturating_sub(text.chars().count() + tail + 3);
            if bar_room < MIN_BAR {
                continue;
            }
            text.push_str(" [");
            text.push_str(&bar(bar_room.min(MAX_BAR), facts));
            text.push(']');
        }
        for part in parts {
            text.push(' ');
            text.push_str(part);
        }
        if text.chars().count() <= room {
            return text;
        }
    }
    count.chars().take(room).collect()
}

/// `=====>    `: `width` columns, the share of the bytes received.
fn bar(width: usize, facts: &Facts) -> String {
    let share = if facts.total_bytes == 0 {
        0.0
    } else {
        (facts.bytes as f64 / facts.total_bytes as f64).clamp(0.0, 1.0)
    };
    let full = ((share * width as f64) as usize).min(width);
    let mut out = "=".repeat(full);
    if full < width {
        out.push('>');
        out.push_str(&" ".repeat(width - full - 1));
    }
    out
}

/// `45s`, `12m05s`, `3h07m`.
fn eta_text(eta: Duration) -> String {
    let secs = eta.as_secs();
    let mut out = String::new();
    let _ = match secs {
        0..=59 => write!(out, "{secs}s"),
        60..=3599 => write!(out, "{}m{:02}s", secs / 60, secs % 60),
        _ => write!(out, "{}h{:02}m", secs / 3600, secs % 3600 / 60),
    };
    out
}

/// The terminal's width now (stderr's), or [`DEFAULT_WIDTH`].
fn terminal_width() -> usize {
    match rustix::termios::tcgetwinsize(std::io::stderr()) {
        Ok(size) if size.ws_col > 0 => usize::from(size.ws_col),
        _ => DEFAULT_WIDTH,
    }
}

/// The progress of one fetch: bytes as they come, messages as they are
/// done.
#[derive(Debug)]
pub(crate) struct Progress {
    bar: ProgressBar,
    done: Arc<AtomicUsize>,
}

impl Progress {
    /// A progress line for `messages` messages of `total_bytes` bytes in
    /// all, on stderr (drawn only if it is a terminal).
    pub(crate) fn new(total_bytes: u64, messages: usize) -> Progress {
        let bar = ProgressBar::new(total_bytes);
        let done = Arc::new(AtomicUsize::new(0));
        let shared = Arc::clone(&done);
        let draw = move |state: &ProgressState, out: &mut dyn std::fmt::Write| {
            let facts = Facts {
                done: shared.load(Ordering::Relaxed),
                messages,
                bytes: state.pos(),
                total_bytes: state.len().unwrap_or(total_bytes),
                per_sec: state.per_sec(),
                eta: (state.pos() > 0).then(|| state.eta()),
            };
            let _ = out.write_str(&line(terminal_width(), &facts));
        };
        if let Ok(style) = ProgressStyle::with_template("{line}") {
            bar.set_style(style.with_key("line", draw));
        }
        Progress { bar, done }
    }

    /// `bytes` more received.
    pub(crate) fn inc(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    /// `done` messages are now stored or failed.
    pub(crate) fn set_done(&self, done: usize) {
        self.done.store(done, Ordering::Relaxed);
        self.bar.tick();
    }

    /// Removes the line.
    pub(crate) fn finish_and_clear(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            done: 1234,
            messages: 20000,
            bytes: 1_288_490_189,
            total_bytes: 21_474_836_480,
            per_sec: 3_250_000.0,
            eta: Some(Duration::from_secs(6012)),
        }
    }

    #[test]
    fn the_line_fits_every_width() {
        let facts = facts();
        for width in 0..200 {
            let text = line(width, &facts);
            assert!(
                text.chars().count() < width.max(1),
                "{width}: {text:?} ({})",
                text.chars().count()
            );
        }
        let wide = line(120, &facts);
        assert_eq!(
            wide,
            "1234/20000 [=>                            ] 1.2 GiB/20.0 GiB 3.1 MiB/s 1h40m"
        );
    }

    #[test]
    fn narrow_terminals_drop_parts_in_order() {
        let facts = facts();
        let sixty = line(60, &facts);
        assert!(sixty.chars().count() <= 59, "{sixty}");
        assert!(sixty.starts_with("1234/20000 [>"), "{sixty}");
        assert!(
            sixty.ends_with("] 1.2 GiB/20.0 GiB 3.1 MiB/s 1h40m"),
            "{sixty}"
        );
        let twenty = line(20, &facts);
        assert_eq!(twenty, "1234/20000 [>     ]");
        let forty = line(40, &facts);
        assert!(forty.chars().count() <= 39, "{forty}");
        assert!(forty.contains("1.2 GiB/20.0 GiB"), "{forty}");
        assert!(!forty.contains("MiB/s"), "{forty}");
        assert_eq!(line(5, &facts), "1234");
    }

    #[test]
    fn bars_and_times_read_right() {
        let mut facts = facts();
        facts.bytes = facts.total_bytes;
        facts.eta = None;
        assert!(line(80, &facts).contains(&format!("[{}]", "=".repeat(MAX_BAR))));
        assert_eq!(eta_text(Duration::from_secs(45)), "45s");
        assert_eq!(eta_text(Duration::from_secs(725)), "12m05s");
    }
}
