//! The progress bar on stderr, drawn by indicatif: with a known total a bar, the
//! percentage, bytes so far of the total, the rate and the time left; without one
//! (stdin from a pipe) a spinner, the bytes so far, the rate and the time spent. Drawn
//! only when stderr is a terminal and `--quiet` is not given, never on stdout (which
//! carries the data on `recv`).
//!
//! The bar is redrawn when bytes are counted, not by a ticker thread: a stalled
//! transfer leaves it as it was, and a message of the watch thread (which starts on a
//! new line when the bar is on) is not overdrawn before the transfer ends.

use std::io::IsTerminal;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Redraws a second, at most.
const REDRAW_HZ: u8 = 10;

/// With a known total, while it runs.
const RUNNING: &str =
    "[{wide_bar}] {percent:>3}%  {bytes} / {total_bytes}  {bytes_per_sec}  ETA {eta}";
/// With a known total, once it is all through: the average rate (the message) and the
/// time it took instead of the ETA.
const FINISHED: &str = "[{wide_bar}] {percent:>3}%  {bytes} / {total_bytes}  {msg}  in {elapsed}";
/// Without a total.
const OPEN: &str = "{spinner} {bytes}  {bytes_per_sec}  {elapsed_precise}";
/// Without a total, once it is all through.
const OPEN_FINISHED: &str = "{bytes}  {msg}  in {elapsed}";

fn style(template: &str) -> ProgressStyle {
    // The templates are the constants above, which the tests parse.
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .progress_chars("#>-")
}

/// A progress bar; hidden unless stderr is a terminal.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A progress bar, drawn if stderr is a terminal and not `quiet`.
    pub fn new(quiet: bool) -> Progress {
        let target = if !quiet && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr_with_hz(REDRAW_HZ)
        } else {
            ProgressDrawTarget::hidden()
        };
        Progress::to(target)
    }

    fn to(target: ProgressDrawTarget) -> Progress {
        let bar = ProgressBar::with_draw_target(None, target).with_style(style(OPEN));
        Progress { bar }
    }

    /// Whether the bar is drawn at all.
    pub fn is_on(&self) -> bool {
        !self.bar.is_hidden()
    }

    /// Sets the total, when it becomes known.
    pub fn set_total(&mut self, total: Option<u64>) {
        match total {
            // The style first: the length change draws.
            Some(total) => {
                self.bar.set_style(style(RUNNING));
                self.bar.set_length(total);
            }
            None => {
                self.bar.set_style(style(OPEN));
                self.bar.unset_length();
            }
        }
    }

    /// Bytes moved so far.
    pub fn done(&self) -> u64 {
        self.bar.position()
    }

    /// Counts `n` more bytes, redrawing if it is time.
    pub fn add(&mut self, n: u64) {
        self.bar.inc(n);
    }

    /// Draws the final line and ends it.
    pub fn finish(&mut self) {
        if self.bar.is_finished() {
            return;
        }
        let secs = self.bar.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            self.done() as f64 / secs
        } else {
            0.0
        };
        self.bar.set_style(style(match self.bar.length() {
            Some(_) => FINISHED,
            None => OPEN_FINISHED,
        }));
        self.bar
            .finish_with_message(format!("{}/s", HumanBytes(rate as u64)));
        // indicatif leaves the cursor at the end of the bar.
        self.end_line();
    }

    /// Ends the line as it is, so that a message can follow on a line of its own. The
    /// bar is not redrawn: the watch thread may have printed a message below it.
    pub fn interrupt(&mut self) {
        if self.bar.is_finished() {
            return;
        }
        let on = self.is_on();
        self.bar.set_draw_target(ProgressDrawTarget::hidden());
        self.bar.abandon();
        if on {
            eprintln!();
        }
    }

    fn end_line(&self) {
        if self.is_on() {
            eprintln!();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use indicatif::TermLike;
    use std::sync::{Arc, Mutex};

    /// A terminal of 100 columns that keeps what is written to it.
    #[derive(Debug, Clone, Default)]
    pub(crate) struct Screen(Arc<Mutex<Vec<String>>>);

    impl Screen {
        /// A draw target onto this screen.
        pub(crate) fn target(&self) -> ProgressDrawTarget {
            ProgressDrawTarget::term_like(Box::new(self.clone()))
        }

        /// The last line drawn (indicatif pads a shorter line with blanks).
        pub(crate) fn last(&self) -> String {
            let writes = self.0.lock().unwrap();
            let line = writes.iter().rev().find(|s| !s.trim().is_empty());
            line.cloned().unwrap_or_default()
        }
    }

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            100
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(s)
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            if !s.is_empty() {
                self.0.lock().unwrap().push(s.to_string());
            }
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn on_screen() -> (Progress, Screen) {
        let screen = Screen::default();
        let p = Progress::to(screen.target());
        (p, screen)
    }

    #[test]
    fn templates_parse() {
        for t in [RUNNING, FINISHED, OPEN, OPEN_FINISHED] {
            assert!(ProgressStyle::with_template(t).is_ok(), "{t}");
        }
    }

    #[test]
    fn known_total_shows_the_bar_the_share_and_the_eta() {
        let (mut p, screen) = on_screen();
        assert!(p.is_on());
        p.set_total(Some(4 << 20));
        p.add(1 << 20);
        let line = screen.last();
        assert!(line.starts_with("[#"), "{line}");
        assert!(line.contains(" 25%  1.00 MiB / 4.00 MiB "), "{line}");
        assert!(line.contains("/s  ETA "), "{line}");
        assert!(line.chars().count() <= 100, "{line}");
        p.add(3 << 20);
        p.finish();
        let line = screen.last();
        assert!(line.contains("100%  4.00 MiB / 4.00 MiB  "), "{line}");
        assert!(line.contains("/s  in "), "{line}");
        assert_eq!(p.done(), 4 << 20);
    }

    #[test]
    fn unknown_total_shows_the_bytes_and_the_rate() {
        let (mut p, screen) = on_screen();
        p.set_total(None);
        p.add(3 << 20);
        let line = screen.last();
        assert!(line.contains(" 3.00 MiB  "), "{line}");
        assert!(line.contains("/s  00:00:0"), "{line}");
        assert!(!line.contains('%'), "{line}");
        p.add(1 << 20);
        p.finish();
        let line = screen.last();
        assert!(line.starts_with("4.00 MiB  "), "{line}");
        assert!(line.contains("/s  in "), "{line}");
        assert_eq!(p.done(), 4 << 20);
    }

    #[test]
    fn interrupted_bar_is_not_redrawn() {
        let (mut p, screen) = on_screen();
        p.set_total(Some(100));
        p.add(10);
        p.add(20);
        // A watch message may be printed below the bar now.
        let drawn = screen.0.lock().unwrap().len();
        p.interrupt();
        assert_eq!(screen.0.lock().unwrap().len(), drawn, "redrawn");
        assert_eq!(p.done(), 30);
    }

    #[test]
    fn hidden_when_quiet_but_still_counting() {
        let mut p = Progress::new(true);
        assert!(!p.is_on());
        p.set_total(Some(10));
        p.add(7);
        p.interrupt();
        assert_eq!(p.done(), 7);
    }
}
