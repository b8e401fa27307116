//! HTML report. Being written.
use crate::event::RunReport;

/// Render a run as a self-contained HTML page.
pub fn html(report: &RunReport) -> String {
    format!("<!doctype html><title>lab verify {}</title>", report.lab)
}
