//! `log`: messages a plugin records in the participant's journey, and what it printed to
//! stdout and stderr, within one budget of lines and bytes per execution.

use crate::bounds::preview;

/// Lines kept per execution; further lines are counted, not stored.
const MAX_LINES: usize = 200;
/// Bytes kept per line.
const MAX_LINE_BYTES: usize = 4096;

pub use flowhost_types::log::{LogLevel, LogLine};

/// The log lines of one execution.
#[derive(Debug)]
pub struct LogCap {
    lines: Vec<LogLine>,
    bytes: usize,
    max_bytes: usize,
    dropped: usize,
}

impl Default for LogCap {
    fn default() -> Self {
        LogCap::new(usize::MAX)
    }
}

impl LogCap {
    /// An empty log that keeps at most `max_bytes` of messages.
    pub fn new(max_bytes: usize) -> Self {
        LogCap {
            lines: Vec::new(),
            bytes: 0,
            max_bytes,
            dropped: 0,
        }
    }

    /// Records a line, truncating long lines and dropping lines past the limits.
    pub fn write(&mut self, level: LogLevel, message: String) {
        let message = match preview(&message, MAX_LINE_BYTES) {
            std::borrow::Cow::Borrowed(_) => message,
            std::borrow::Cow::Owned(cut) => cut,
        };
        if self.lines.len() >= MAX_LINES || self.bytes + message.len() > self.max_bytes {
            self.dropped += 1;
            return;
        }
        self.bytes += message.len();
        self.lines.push(LogLine { level, message });
    }

    /// The lines, with a note of how many were dropped.
    pub fn into_lines(mut self) -> Vec<LogLine> {
        if self.dropped > 0 {
            self.lines.push(LogLine {
                level: LogLevel::Warn,
                message: format!(
                    "{} more log lines dropped (the limits are {MAX_LINES} lines and limits.max_log_bytes = {} per execution)",
                    self.dropped, self.max_bytes
                ),
            });
        }
        self.lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_lines_and_length() {
        let mut log = LogCap::default();
        for i in 0..MAX_LINES + 5 {
            log.write(LogLevel::Info, format!("line {i}"));
        }
        log.write(LogLevel::Info, "é".repeat(MAX_LINE_BYTES));
        let lines = log.into_lines();
        assert_eq!(lines.len(), MAX_LINES + 1);
        assert!(lines.last().unwrap().message.contains("6 more"));
        let mut log = LogCap::default();
        log.write(LogLevel::Info, "é".repeat(MAX_LINE_BYTES));
        assert!(log.into_lines()[0].message.len() <= MAX_LINE_BYTES + 3);
    }

    #[test]
    fn caps_bytes() {
        let mut log = LogCap::new(10_000);
        for _ in 0..5 {
            log.write(LogLevel::Info, "x".repeat(4000));
        }
        let lines = log.into_lines();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[2].message,
            "3 more log lines dropped (the limits are 200 lines and limits.max_log_bytes = 10000 per execution)"
        );
    }
}
