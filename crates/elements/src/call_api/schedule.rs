//! When a Call API element may send: a delivery window in a time zone, and retry back-off.

use flowhost_types::clock::Millis;
use jiff::civil::Time;
use jiff::tz::TimeZone;
use serde::Deserialize;

/// `schedule.window` as written in the flow.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WindowConfig {
    start: String,
    end: String,
    time_zone: String,
    #[serde(default)]
    days: Vec<String>,
}

/// Hours of the day (on some days of the week) in a time zone when requests may go.
#[derive(Clone, Debug)]
pub(super) struct Window {
    start: Time,
    end: Time,
    tz: TimeZone,
    /// Monday first.
    days: [bool; 7],
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn parse_time(text: &str) -> Option<Time> {
    let (h, m) = text.trim().split_once(':')?;
    let (h, m): (i8, i8) = (h.parse().ok()?, m.parse().ok()?);
    Time::new(h, m, 0, 0).ok()
}

impl Window {
    /// Checks the configuration; every problem as `(path below schedule.window, message)`.
    pub(super) fn new(c: &WindowConfig) -> Result<Window, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let mut time = |field: &str, text: &str| {
            let parsed = parse_time(text);
            if parsed.is_none() {
                problems.push((
                    field.to_owned(),
                    format!("{text:?} is not a time of day; write HH:MM, e.g. \"09:00\""),
                ));
            }
            parsed
        };
        let (start, end) = (time("start", &c.start), time("end", &c.end));
        if start.is_some() && start == end {
            problems.push((
                "end".into(),
                "equals start; for a window across midnight write e.g. start 22:00, end 06:00"
                    .into(),
            ));
        }
        let tz = TimeZone::get(&c.time_zone).ok();
        if tz.is_none() {
            problems.push((
                "time_zone".to_owned(),
                format!(
                    "{:?} is not an IANA time zone; write e.g. \"Europe/Zagreb\" or \"UTC\"",
                    c.time_zone
                ),
            ));
        }
        let mut days = [c.days.is_empty(); 7];
        for (i, d) in c.days.iter().enumerate() {
            let lower = d.to_ascii_lowercase();
            match DAY_NAMES.iter().position(|name| lower.starts_with(name)) {
                Some(n) => days[n] = true,
                None => problems.push((
                    format!("days[{i}]"),
                    format!("{d:?} is not a day; write mon, tue, wed, thu, fri, sat or sun"),
                )),
            }
        }
        match (start, end, tz) {
            (Some(start), Some(end), Some(tz)) if problems.is_empty() => Ok(Window {
                start,
                end,
                tz,
                days,
            }),
            _ => Err(problems),
        }
    }

    fn day_allowed(&self, date: jiff::civil::Date) -> bool {
        self.days[date.weekday().to_monday_zero_offset() as usize]
    }

    /// Whether `now` is inside the window.
    pub(super) fn contains(&self, now: Millis) -> bool {
        let Ok(ts) = jiff::Timestamp::from_millisecond(now) else {
            return false;
        };
        let local = ts.to_zoned_datetime(self.tz.clone());
        let (t, date) = (local.time(), local.date());
        if self.start < self.end {
            self.day_allowed(date) && self.start <= t && t < self.end
        } else {
            // Across midnight: the day that counts is the day the window opened.
            (self.day_allowed(date) && t >= self.start)
                || (t < self.end && date.yesterday().is_ok_and(|y| self.day_allowed(y)))
        }
    }

    /// When the window next opens after `now` (the local start time on the next allowed day;
    /// a start time that a DST change skips opens at the first instant after the gap).
    pub(super) fn next_open(&self, now: Millis) -> Option<Millis> {
        let local = jiff::Timestamp::from_millisecond(now)
            .ok()?
            .to_zoned_datetime(self.tz.clone());
        let mut date = local.date();
        for _ in 0..=8 {
            if self.day_allowed(date) {
                let open = date
                    .to_datetime(self.start)
                    .to_zoned_datetime(self.tz.clone())
                    .ok()?;
                let ms = open.timestamp().as_millisecond();
                if ms > now {
                    return Some(ms);
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    /// `now` as local time in the window's zone, for journey lines.
    pub(super) fn local(&self, ms: Millis) -> String {
        jiff::Timestamp::from_millisecond(ms)
            .map(|ts| {
                ts.to_zoned_datetime(self.tz.clone())
                    .strftime("%Y-%m-%d %H:%M %Z")
                    .to_string()
            })
            .unwrap_or_default()
    }
}

/// `retry` as written in the flow.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct Retry {
    /// Attempts in all, the first included.
    pub(super) max_attempts: u32,
    /// Back-off before the second attempt; doubles each time.
    pub(super) initial_backoff_ms: u64,
    /// Longest back-off.
    pub(super) max_backoff_ms: u64,
    /// No attempt starts later than this after the first.
    pub(super) max_total_ms: u64,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            max_attempts: 3,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 60_000,
            max_total_ms: 600_000,
        }
    }
}

impl Retry {
    /// The wait before the attempt after `attempt`, or `None` when no attempt is left.
    /// `retry_after` (from the server) is used as it is; otherwise exponential back-off with
    /// equal jitter: half the back-off fixed, half random, so queued participants spread out.
    pub(super) fn next_delay(
        &self,
        attempt: u32,
        first_at: Millis,
        now: Millis,
        retry_after: Option<Millis>,
    ) -> Option<Millis> {
        if attempt >= self.max_attempts {
            return None;
        }
        let delay = retry_after.unwrap_or_else(|| {
            let backoff = self
                .initial_backoff_ms
                .saturating_mul(1u64 << (attempt - 1).min(30))
                .min(self.max_backoff_ms) as Millis;
            let half = backoff / 2;
            let random = (uuid::Uuid::new_v4().as_u128() % (half as u128 + 1)) as Millis;
            backoff - half + random
        });
        (now + delay - first_at <= self.max_total_ms as Millis).then_some(delay)
    }
}

/// A `Retry-After` value (seconds, or an HTTP date) as a delay from `now`.
pub(super) fn parse_retry_after(value: &str, now: Millis) -> Option<Millis> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u32>() {
        return Some(Millis::from(seconds) * 1000);
    }
    let at = jiff::fmt::rfc2822::parse(value).ok()?;
    Some((at.timestamp().as_millisecond() - now).max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(start: &str, end: &str, tz: &str, days: &[&str]) -> Window {
        Window::new(&WindowConfig {
            start: start.into(),
            end: end.into(),
            time_zone: tz.into(),
            days: days.iter().map(|d| (*d).to_owned()).collect(),
        })
        .unwrap()
    }

    fn ms(text: &str) -> Millis {
        text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn window_opens_on_the_next_allowed_day_in_local_time() {
        let w = window(
            "09:00",
            "17:00",
            "Europe/Zagreb",
            &["mon", "tue", "wed", "thu", "fri"],
        );
        // Friday 2026-11-27 18:00 local (17:00Z): closed until Monday 09:00 local (08:00Z).
        let friday_evening = ms("2026-11-27T17:00:00Z");
        assert!(!w.contains(friday_evening));
        assert_eq!(
            w.next_open(friday_evening),
            Some(ms("2026-11-30T08:00:00Z"))
        );
        assert!(w.contains(ms("2026-11-30T08:00:00Z")));
        assert!(
            !w.contains(ms("2026-11-30T16:00:00Z")),
            "17:00 local is closed"
        );
    }

    #[test]
    fn window_follows_dst_changes() {
        let w = window("09:00", "17:00", "Europe/Zagreb", &[]);
        // Clocks go forward on 2026-03-29: 09:00 is 08:00Z the day before, 07:00Z that day.
        assert_eq!(
            w.next_open(ms("2026-03-27T20:00:00Z")),
            Some(ms("2026-03-28T08:00:00Z"))
        );
        assert_eq!(
            w.next_open(ms("2026-03-28T20:00:00Z")),
            Some(ms("2026-03-29T07:00:00Z"))
        );
        // A start inside the skipped hour opens right after the gap.
        let gap = window("02:30", "05:00", "Europe/Zagreb", &[]);
        assert_eq!(
            gap.next_open(ms("2026-03-28T20:00:00Z")),
            Some(ms("2026-03-29T01:30:00Z"))
        );
    }

    #[test]
    fn window_across_midnight_belongs_to_the_day_it_opens() {
        let w = window("22:00", "06:00", "UTC", &["fri"]);
        assert!(w.contains(ms("2026-11-27T23:00:00Z")), "Friday night");
        assert!(
            w.contains(ms("2026-11-28T05:00:00Z")),
            "Saturday early, Friday's window"
        );
        assert!(!w.contains(ms("2026-11-29T05:00:00Z")), "Sunday early");
        assert_eq!(
            w.next_open(ms("2026-11-28T07:00:00Z")),
            Some(ms("2026-12-04T22:00:00Z"))
        );
    }

    #[test]
    fn bad_windows_say_which_field() {
        let bad = |s: &str, e: &str, tz: &str, d: &[&str]| {
            Window::new(&WindowConfig {
                start: s.into(),
                end: e.into(),
                time_zone: tz.into(),
                days: d.iter().map(|x| (*x).to_owned()).collect(),
            })
            .unwrap_err()
            .into_iter()
            .map(|(field, _)| field)
            .collect::<Vec<_>>()
        };
        assert_eq!(bad("9", "17:00", "UTC", &[]), ["start"]);
        assert_eq!(bad("09:00", "09:00", "UTC", &[]), ["end"]);
        assert_eq!(bad("09:00", "17:00", "Mars/Olympus", &[]), ["time_zone"]);
        assert_eq!(
            bad("09:00", "17:00", "UTC", &["mon", "funday"]),
            ["days[1]"]
        );
        // Every problem, not the first.
        assert_eq!(
            bad("9", "25:00", "Mars/Olympus", &["funday", "tue", "x"]),
            ["start", "end", "time_zone", "days[0]", "days[2]"]
        );
    }

    #[test]
    fn retry_delays_back_off_and_respect_the_bounds() {
        let r = Retry {
            max_attempts: 4,
            initial_backoff_ms: 1000,
            max_backoff_ms: 3000,
            max_total_ms: 10_000,
        };
        let d1 = r.next_delay(1, 0, 0, None).unwrap();
        assert!((500..=1000).contains(&d1), "{d1}");
        let d2 = r.next_delay(2, 0, 1000, None).unwrap();
        assert!((1000..=2000).contains(&d2), "{d2}");
        let d3 = r.next_delay(3, 0, 3000, None).unwrap();
        assert!((1500..=3000).contains(&d3), "capped at max_backoff: {d3}");
        assert_eq!(r.next_delay(4, 0, 6000, None), None, "attempts spent");
        assert_eq!(r.next_delay(1, 0, 0, Some(7000)), Some(7000));
        assert_eq!(r.next_delay(1, 0, 5000, Some(7000)), None, "past max_total");
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = ms("2026-11-24T10:00:00Z");
        assert_eq!(parse_retry_after("120", now), Some(120_000));
        assert_eq!(
            parse_retry_after("Tue, 24 Nov 2026 10:00:30 GMT", now),
            Some(30_000)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
