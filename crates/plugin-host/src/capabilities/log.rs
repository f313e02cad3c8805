//! `log`: messages a plugin records in the participant's journey.

/// Lines kept per execution; further lines are counted, not stored.
const MAX_LINES: usize = 200;
/// Bytes kept per line.
const MAX_LINE_BYTES: usize = 4096;

pub use flowhost_types::log::{LogLevel, LogLine};

/// The log lines of one execution.
#[derive(Debug, Default)]
pub struct LogCap {
    lines: Vec<LogLine>,
    dropped: usize,
}

impl LogCap {
    /// Records a line, truncating long lines and dropping lines past the limit.
    pub fn write(&mut self, level: LogLevel, mut message: String) {
        if self.lines.len() >= MAX_LINES {
            self.dropped += 1;
            return;
        }
        if message.len() > MAX_LINE_BYTES {
            let mut end = MAX_LINE_BYTES;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        self.lines.push(LogLine { level, message });
    }

    /// The lines, with a note of how many were dropped.
    pub fn into_lines(mut self) -> Vec<LogLine> {
        if self.dropped > 0 {
            self.lines.push(LogLine {
                level: LogLevel::Warn,
                message: format!(
                    "{} more log lines dropped (limit {MAX_LINES})",
                    self.dropped
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
}
