//! What the wait for a sign-in shows: on a terminal one line redrawn in place (a spinner, the
//! time waited and the time left), elsewhere (a log, a pipe) a plain line now and then, since
//! carriage returns make a mess of a file.

use std::io::Write;
use std::time::Duration;

/// ASCII frames: they draw on every terminal and in every font.
const FRAMES: [char; 4] = ['|', '/', '-', '\\'];

/// How often the line is redrawn on a terminal.
pub const REDRAW: Duration = Duration::from_millis(100);

/// How often a plain line is written when stdout is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(30);

/// `M:SS`, or `H:MM:SS` past an hour.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// The line of frame `frame`: short enough for an 80-column terminal, so that `\r` always
/// returns to its start (a wrapped line could not be redrawn in place). The time left is rounded
/// up, as countdowns are: it shows the full lifetime at the start and 0:00 only at expiry.
pub fn line(frame: u64, elapsed: Duration, left: Duration, note: Option<&str>) -> String {
    let spin = FRAMES[(frame % FRAMES.len() as u64) as usize];
    let left = Duration::from_secs(left.as_secs() + u64::from(left.subsec_nanos() > 0));
    let mut text = format!("{spin} waiting for sign-in: {} elapsed, code expires in {}", clock(elapsed), clock(left));
    if let Some(note) = note {
        text.push_str(" (");
        text.push_str(note);
        text.push(')');
    }
    text.chars().take(79).collect()
}

pub struct Spinner<W: Write> {
    out: W,
    terminal: bool,
    frame: u64,
    drawn: bool,
    last_plain: Option<Duration>,
}

impl<W: Write> Spinner<W> {
    pub fn new(out: W, terminal: bool) -> Self {
        Spinner { out, terminal, frame: 0, drawn: false, last_plain: None }
    }

    /// One tick: redraws the line on a terminal; elsewhere writes a line when it is due.
    pub fn tick(&mut self, elapsed: Duration, left: Duration, note: Option<&str>) {
        if self.terminal {
            // \x1b[K clears what a longer previous line left behind.
            let _ = write!(self.out, "\r{}\x1b[K", line(self.frame, elapsed, left, note));
            self.frame += 1;
            self.drawn = true;
        } else if self.last_plain.is_none_or(|at| elapsed.saturating_sub(at) >= PLAIN_EVERY) {
            let text = line(0, elapsed, left, note);
            let _ = writeln!(self.out, "{}", &text[2..]);
            self.last_plain = Some(elapsed);
        }
        let _ = self.out.flush();
    }

    /// Clears the spinner's line, so that the ending is written on a clean one.
    pub fn clear(&mut self) {
        if self.drawn {
            let _ = write!(self.out, "\r\x1b[K");
            let _ = self.out.flush();
            self.drawn = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_reads_minutes_and_hours() {
        assert_eq!(clock(Duration::from_millis(999)), "0:00");
        assert_eq!(clock(Duration::from_secs(65)), "1:05");
        assert_eq!(clock(Duration::from_secs(3725)), "1:02:05");
    }

    #[test]
    fn time_left_rounds_up() {
        assert!(line(0, Duration::from_millis(10), Duration::from_millis(2990), None).ends_with("code expires in 0:03"));
        assert!(line(0, Duration::from_millis(3000), Duration::ZERO, None).ends_with("code expires in 0:00"));
    }

    #[test]
    fn terminal_redraws_in_place_and_plain_output_writes_lines() {
        let mut tty = Spinner::new(Vec::new(), true);
        tty.tick(Duration::from_secs(1), Duration::from_secs(899), None);
        tty.tick(Duration::from_secs(2), Duration::from_secs(898), Some("server unreachable"));
        tty.clear();
        let text = String::from_utf8(tty.out).unwrap();
        assert_eq!(
            text,
            "\r| waiting for sign-in: 0:01 elapsed, code expires in 14:59\x1b[K\
             \r/ waiting for sign-in: 0:02 elapsed, code expires in 14:58 (server unreachable)\x1b[K\r\x1b[K"
        );

        let mut plain = Spinner::new(Vec::new(), false);
        for s in 0..61 {
            plain.tick(Duration::from_secs(s), Duration::from_secs(900 - s), None);
        }
        plain.clear();
        let text = String::from_utf8(plain.out).unwrap();
        assert!(!text.contains('\r') && !text.contains('\x1b'), "{text:?}");
        assert_eq!(text.lines().count(), 3, "at 0:00, 0:30 and 1:00: {text}");
        assert!(text.starts_with("waiting for sign-in: 0:00 elapsed, code expires in 15:00\n"), "{text}");
    }
}
