//! Rendering of compose-templates/ (one tera template per dependency). The
//! rendered text is a docker-compose service plus an `x-lab` block; the Docker
//! backend and `lab export compose` both read it, so each dependency is
//! described once.

use std::collections::BTreeMap;

use include_dir::{include_dir, Dir};
use serde::{Deserialize, Serialize};

use crate::probe::Readiness;

static TEMPLATES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/compose-templates");

/// Template names (file names without `.yaml.tera`).
pub fn names() -> Vec<&'static str> {
    let mut v: Vec<&str> = TEMPLATES.files().filter_map(|f| f.path().to_str()?.strip_suffix(".yaml.tera")).collect();
    v.sort();
    v
}

/// The template's source text.
pub fn source(name: &str) -> Option<&'static str> {
    TEMPLATES.get_file(format!("{name}.yaml.tera"))?.contents_utf8()
}

/// A dependency as a template describes it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DepSpec {
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// `HOST:IP` entries for the container's /etc/hosts (`host-gateway` is the Docker host).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    #[serde(rename = "x-lab")]
    pub lab: LabExt,
}

/// What lab needs beyond compose: the port clients use and how to tell it is ready.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LabExt {
    pub port: u16,
    #[serde(with = "serde_yaml::with::singleton_map")]
    pub ready: Readiness,
    /// A client URL with `{host}` and `{port}` placeholders (for `deps.<name>.url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The dependency delivers notifications to lab's webhook sink (`webhook` in
    /// the template's context is its URL), so the plan runs the sink.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub webhook: bool,
    /// The container runs lab's own program (`lab_exe` in the context is its
    /// path inside the container): it is made from the image set's base image
    /// with lab's executable mounted, as the fault proxy is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub runs_lab: bool,
}

/// Failure to render a dependency template.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum TemplateError {
    #[error("no compose template named `{0}`")]
    #[diagnostic(help("templates live in compose-templates/<name>.yaml.tera"))]
    Unknown(String),
    #[error("compose template `{name}` does not render: {message}")]
    Render { name: String, message: String },
    #[error("compose template `{name}` rendered YAML that is not a service: {message}\n---\n{text}")]
    Shape { name: String, message: String, text: String },
}

/// Render one dependency template.
pub fn render(template: &str, image: &str, dep_name: &str, instance: &str, options: &BTreeMap<String, String>) -> Result<(String, DepSpec), TemplateError> {
    render_with(template, image, dep_name, instance, options, &tera::Context::new())
}

/// Render one dependency template with more of the instance in its context
/// (the plan gives `service` with the replicas' scrape targets, `deps` with
/// the other dependencies' in-network addresses, and `webhook`).
pub fn render_with(template: &str, image: &str, dep_name: &str, instance: &str, options: &BTreeMap<String, String>, extra: &tera::Context) -> Result<(String, DepSpec), TemplateError> {
    let src = source(template).ok_or_else(|| TemplateError::Unknown(template.to_string()))?;
    let mut ctx = extra.clone();
    ctx.insert("image", image);
    ctx.insert("name", dep_name);
    ctx.insert("instance", instance);
    ctx.insert("options", options);
    let text = tera::Tera::one_off(src, &ctx, false).map_err(|e| TemplateError::Render { name: template.to_string(), message: crate::lab::tera_message(&e) })?;
    let spec: DepSpec = serde_yaml::from_str(&text).map_err(|e| TemplateError::Shape { name: template.to_string(), message: e.to_string(), text: text.clone() })?;
    Ok((text, spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_renders_to_a_service() {
        assert!(names().len() >= 5, "{:?}", names());
        for name in names() {
            let (_, spec) = render(name, "img:1", "dep", "lab-x", &BTreeMap::new()).unwrap();
            assert_eq!(spec.image, "img:1");
            assert!(spec.lab.port > 0);
        }
    }

    #[test]
    fn options_reach_the_template() {
        let opts = BTreeMap::from([("user".to_string(), "alice".to_string())]);
        let (_, spec) = render("postgres", "pg", "db", "lab-x", &opts).unwrap();
        assert_eq!(spec.environment["POSTGRES_USER"], "alice");
        assert!(matches!(spec.lab.ready, Readiness::Postgres { ref user, .. } if user == "alice"));
    }

    #[test]
    fn unknown_template_is_an_error() {
        assert!(matches!(render("nope", "i", "d", "x", &BTreeMap::new()), Err(TemplateError::Unknown(_))));
    }
}
