//! What a step polled until its time ran out (`retry_for`): how the value it
//! looked at moved, so that a failure shows "12 @0.2 s, 21 @5.0 s, 30 @12.4 s"
//! rather than only the last answer, and the hint can follow what was seen
//! (too slow, too many, lost).

use std::time::{Duration, Instant};

use super::expect::fmt_dur;

/// How a polled number ended, against the number expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Above the expected number.
    Over,
    /// Below it and still moving when the time ran out.
    Rising,
    /// Below it and no longer moving.
    Stuck,
}

/// The values a step saw, each with when it first saw it.
#[derive(Debug)]
pub struct Polled {
    start: Instant,
    seen: Vec<(Duration, String)>,
    polls: u32,
    last: Duration,
}

impl Polled {
    pub fn new() -> Polled {
        Polled { start: Instant::now(), seen: Vec::new(), polls: 0, last: Duration::ZERO }
    }

    /// Time since the first poll.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// One poll's answer (as the mismatch words it).
    pub fn see(&mut self, got: &str) {
        self.see_at(self.start.elapsed(), got);
    }

    fn see_at(&mut self, at: Duration, got: &str) {
        self.polls += 1;
        self.last = at;
        if self.seen.last().is_none_or(|(_, g)| g != got) {
            self.seen.push((at, got.to_string()));
        }
    }

    /// The answers in order, e.g. `JSON /orders = 12 @0.2 s, 21 @5.0 s, 30
    /// @12.4 s (still 30 @30.0 s)`: a shared `what = ` is said once; a long
    /// run keeps its first two and last five values.
    pub fn describe(&self) -> String {
        let Some((_, last)) = self.seen.last() else { return String::new() };
        if self.seen.len() == 1 {
            return format!("{last} on every poll for {} ({} polls)", fmt_dur(self.last), self.polls);
        }
        let prefix = self.seen[0].1.split_once(" = ").map(|(w, _)| format!("{w} = ")).filter(|p| self.seen.iter().all(|(_, g)| g.starts_with(p.as_str())));
        let value = |g: &str| match &prefix {
            Some(p) => g[p.len()..].to_string(),
            None => g.to_string(),
        };
        let shown: Vec<String> = self.seen.iter().map(|(at, g)| format!("{} @{}", value(g), fmt_dur(*at))).collect();
        let mut parts: Vec<String> =
            if shown.len() > 7 { shown[..2].iter().cloned().chain(std::iter::once("…".to_string())).chain(shown[shown.len() - 5..].iter().cloned()).collect() } else { shown };
        let (changed, _) = self.seen.last().expect("not empty");
        let tail = if *changed == self.last { ", still changing when the time ran out".to_string() } else { format!(" (still {} @{})", value(last), fmt_dur(self.last)) };
        parts.last_mut().expect("not empty").push_str(&tail);
        format!("{}{}", prefix.unwrap_or_default(), parts.join(", "))
    }

    /// How the last number ended against `expected` ("what = N"), when both
    /// are numbers of the same thing.
    pub fn observed(&self, expected: &str, window: Duration) -> Option<Observed> {
        let (_, last) = self.seen.last()?;
        let (what_e, want) = expected.split_once(" = ")?;
        let (what_g, got) = last.split_once(" = ")?;
        if what_e != what_g {
            return None;
        }
        let (want, got) = (want.trim().parse::<f64>().ok()?, got.trim().parse::<f64>().ok()?);
        if got > want {
            return Some(Observed::Over);
        }
        // Still moving: it changed in the last quarter of the time it had.
        let (changed, _) = self.seen.last()?;
        let moving = self.seen.len() > 1 && changed.as_secs_f64() >= window.as_secs_f64() * 0.75;
        Some(if moving { Observed::Rising } else { Observed::Stuck })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn polled(values: &[(u64, &str)]) -> Polled {
        let mut p = Polled::new();
        for (ms, v) in values {
            p.see_at(Duration::from_millis(*ms), v);
        }
        p
    }

    #[test]
    fn a_moving_number_is_shown_as_it_moved() {
        let p = polled(&[(200, "JSON /orders = 12"), (400, "JSON /orders = 12"), (5000, "JSON /orders = 21"), (12400, "JSON /orders = 30"), (30000, "JSON /orders = 30")]);
        assert_eq!(p.describe(), "JSON /orders = 12 @200 ms, 21 @5.0 s, 30 @12.4 s (still 30 @30.0 s)");
        assert_eq!(p.observed("JSON /orders = 60", Duration::from_secs(30)), Some(Observed::Stuck));
        assert_eq!(p.observed("JSON /orders = 20", Duration::from_secs(30)), Some(Observed::Over));
        let rising = polled(&[(200, "JSON /orders = 12"), (24000, "JSON /orders = 21"), (29800, "JSON /orders = 30")]);
        assert_eq!(rising.describe(), "JSON /orders = 12 @200 ms, 21 @24.0 s, 30 @29.8 s, still changing when the time ran out");
        assert_eq!(rising.observed("JSON /orders = 60", Duration::from_secs(30)), Some(Observed::Rising));
        assert_eq!(rising.observed("status 200 OK", Duration::from_secs(30)), None);
    }

    #[test]
    fn one_value_throughout_and_long_runs_are_short() {
        let p = polled(&[(0, "status 503 Service Unavailable"), (5000, "status 503 Service Unavailable")]);
        assert_eq!(p.describe(), "status 503 Service Unavailable on every poll for 5.0 s (2 polls)");
        let many: Vec<(u64, String)> = (0..20).map(|i| (i * 1000, format!("JSON /n = {i}"))).collect();
        let p = polled(&many.iter().map(|(t, v)| (*t, v.as_str())).collect::<Vec<_>>());
        assert_eq!(p.describe(), "JSON /n = 0 @0 ms, 1 @1.0 s, …, 15 @15.0 s, 16 @16.0 s, 17 @17.0 s, 18 @18.0 s, 19 @19.0 s, still changing when the time ran out");
        let mixed = polled(&[(0, "status 503 Service Unavailable"), (1000, "JSON /orders = 3")]);
        assert_eq!(mixed.describe(), "status 503 Service Unavailable @0 ms, JSON /orders = 3 @1.0 s, still changing when the time ran out");
    }
}
