//! Reporters: the terminal (live, from events), JSON and JUnit XML (from the
//! finished report).

mod github;
mod html;
mod junit;
mod terminal;

pub use github::github;
pub use html::html;
pub use junit::junit;
pub use terminal::Terminal;

use crate::event::RunReport;

/// Report formats of `lab verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Stages, checks, timings and failures, for people.
    Terminal,
    /// One JSON document, for scripts.
    Json,
    /// JUnit XML, which CI systems render.
    Junit,
    /// A self-contained HTML page of the checks, with the workload's timeline where there is one.
    Html,
    /// GitHub Actions workflow commands: a group per stage, an error annotation per failed check.
    Github,
}

/// Render a finished report in a file format.
pub fn render(report: &RunReport, format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(report).expect("report serializes") + "\n",
        Format::Junit => junit(report),
        Format::Html => html(report),
        Format::Github => github(report),
        Format::Terminal => terminal::render_report(report),
    }
}

#[cfg(test)]
mod tests;
