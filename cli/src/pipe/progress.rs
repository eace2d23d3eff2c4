//! The progress bar on stderr: bytes so far, the rate, and with a known total a bar,
//! the percentage and the time left. Drawn only when stderr is a terminal, at most
//! ten times a second.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::args::human_bytes;

/// How often the line is redrawn.
const REDRAW: Duration = Duration::from_millis(100);

/// A progress line; silent unless stderr is a terminal.
#[derive(Debug)]
pub struct Progress {
    on: bool,
    /// Whether a line is on the screen, unfinished.
    drawn: bool,
    total: Option<u64>,
    done: u64,
    start: Instant,
    next_draw: Instant,
}

impl Progress {
    /// A progress line, drawn if stderr is a terminal and not `quiet`.
    pub fn new(quiet: bool) -> Progress {
        let now = Instant::now();
        Progress {
            on: !quiet && std::io::stderr().is_terminal(),
            drawn: false,
            total: None,
            done: 0,
            start: now,
            next_draw: now,
        }
    }

    /// Whether the bar is drawn at all.
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Sets the total, when it becomes known.
    pub fn set_total(&mut self, total: Option<u64>) {
        self.total = total;
    }

    /// Bytes moved so far.
    pub fn done(&self) -> u64 {
        self.done
    }

    /// Counts `n` more bytes, redrawing if it is time.
    pub fn add(&mut self, n: u64) {
        self.done += n;
        if self.on {
            let now = Instant::now();
            if now >= self.next_draw {
                self.next_draw = now + REDRAW;
                self.draw(now);
            }
        }
    }

    /// Draws the final line and ends it.
    pub fn finish(&mut self) {
        if self.on {
            self.draw(Instant::now());
            eprintln!();
            self.drawn = false;
        }
    }

    /// Ends the line as it is, so that a message can follow on a line of its own.
    pub fn interrupt(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }

    fn draw(&mut self, now: Instant) {
        let width = terminal_width().unwrap_or(80);
        let line = render(self.done, self.total, now - self.start, width);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line}\x1b[K");
        let _ = err.flush();
        self.drawn = true;
    }
}

/// The columns of the terminal on stderr.
fn terminal_width() -> Option<usize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct we pass, which lives
    // across the call.
    let r = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_col > 0).then_some(ws.ws_col as usize)
}

/// `m:ss` or `h:mm:ss`.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// The progress line for `done` bytes of `total` after `elapsed`, fitted to `width`
/// columns (the bar takes what the figures leave).
pub fn render(done: u64, total: Option<u64>, elapsed: Duration, width: usize) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let rate_text = format!("{}/s", human_bytes(rate as u64));
    let Some(total) = total else {
        return format!("{}  {rate_text}  {}", human_bytes(done), clock(elapsed));
    };
    let fraction = if total == 0 {
        1.0
    } else {
        (done as f64 / total as f64).min(1.0)
    };
    let eta = if done >= total {
        clock(elapsed)
    } else if rate > 0.0 {
        format!(
            "ETA {}",
            clock(Duration::from_secs_f64((total - done) as f64 / rate))
        )
    } else {
        "ETA --:--".to_string()
    };
    let figures = format!(
        "{:>3.0}%  {} / {}  {rate_text}  {eta}",
        fraction * 100.0,
        human_bytes(done),
        human_bytes(total)
    );
    // "[" bar "] " figures, within width - 1 (a full last column wraps on some
    // terminals).
    let room = width.saturating_sub(figures.len() + 4);
    if room < 10 {
        return figures;
    }
    let bar = room.min(50);
    let filled = ((bar as f64) * fraction) as usize;
    format!(
        "[{}{}] {figures}",
        "#".repeat(filled),
        "-".repeat(bar - filled)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let s = Duration::from_secs;
        assert_eq!(
            render(3 << 20, None, s(3), 80),
            "3.00 MiB  1.00 MiB/s  0:03"
        );
        let line = render(1 << 30, Some(4 << 30), s(2), 100);
        assert!(line.starts_with("[############-"), "{line}");
        assert!(
            line.ends_with(" 25%  1.00 GiB / 4.00 GiB  512 MiB/s  ETA 0:06"),
            "{line}"
        );
        assert!(line.len() < 100);
        // Too narrow for a bar: the figures alone.
        assert!(render(1, Some(2), s(1), 30).starts_with(" 50%"));
        assert!(render(0, Some(0), s(0), 80).contains("100%"));
        assert!(render(0, Some(10), s(0), 80).contains("ETA --:--"));
        assert_eq!(clock(s(3725)), "1:02:05");
    }
}
