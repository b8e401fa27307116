//! Image sets. `upstream`: the official tags, pulled from a registry.
//! `debian`: built on this machine from Debian packages by `lab images bake`,
//! for machines without a registry and for air-gapped classrooms.
//!
//! The set is chosen by, first to last: `--images`, the `LAB_IMAGES`
//! environment variable, `images:` in `$XDG_CONFIG_HOME/lab/config.yaml`
//! (usually `~/.config/lab/config.yaml`), and the default `upstream`.

pub mod bake;
pub mod debian;
pub mod registry;

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

/// Which images a lab runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageSet {
    /// Official images (redis, postgres, rabbitmq, prom/*), pulled from a registry.
    #[default]
    Upstream,
    /// Images baked here from Debian packages (`lab images bake`); no registry needed.
    Debian,
}

impl fmt::Display for ImageSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImageSet::Upstream => "upstream",
            ImageSet::Debian => "debian",
        })
    }
}

/// Upstream tags, by template name; `base` runs the learner's binaries.
pub const UPSTREAM: &[(&str, &str)] = &[
    ("redis", "redis:7.0"),
    ("postgres", "postgres:15"),
    ("rabbitmq", "rabbitmq:3.10"),
    ("prometheus", "prom/prometheus:v2.42.0"),
    ("alertmanager", "prom/alertmanager:v0.25.0"),
    ("base", "debian:bookworm-slim"),
];

impl ImageSet {
    /// The image for a template name (or `base`).
    pub fn image(self, name: &str) -> String {
        match self {
            ImageSet::Upstream => UPSTREAM.iter().find(|(n, _)| *n == name).map(|(_, t)| t.to_string()),
            ImageSet::Debian => debian::recipe(name).map(|r| r.tag.to_string()),
        }
        .unwrap_or_else(|| format!("lab-unknown/{name}"))
    }

    /// Every (name, tag) of the set.
    pub fn all(self) -> Vec<(&'static str, String)> {
        let names: Vec<&'static str> = match self {
            ImageSet::Upstream => UPSTREAM.iter().map(|(n, _)| *n).collect(),
            ImageSet::Debian => debian::RECIPES.iter().map(|r| r.name).collect(),
        };
        names.into_iter().map(|n| (n, self.image(n))).collect()
    }
}

/// Where the chosen set came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Flag,
    Env,
    Config(PathBuf),
    Default,
}

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    images: Option<ImageSet>,
}

/// The config file path.
pub fn config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("lab").join("config.yaml"))
}

/// Resolve the image set from the flag, the environment and the config file.
pub fn choose(flag: Option<ImageSet>) -> Result<(ImageSet, Choice), String> {
    choose_from(flag, std::env::var("LAB_IMAGES").ok(), config_path())
}

/// The same, with the environment variable and the config file given.
pub fn choose_from(flag: Option<ImageSet>, env: Option<String>, config: Option<PathBuf>) -> Result<(ImageSet, Choice), String> {
    if let Some(s) = flag {
        return Ok((s, Choice::Flag));
    }
    if let Some(v) = env {
        if !v.is_empty() {
            return match v.as_str() {
                "upstream" => Ok((ImageSet::Upstream, Choice::Env)),
                "debian" => Ok((ImageSet::Debian, Choice::Env)),
                other => Err(format!("LAB_IMAGES={other} is not an image set; use `upstream` or `debian`")),
            };
        }
    }
    if let Some(p) = config {
        if let Ok(text) = std::fs::read_to_string(&p) {
            let cfg: Config = serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
            if let Some(s) = cfg.images {
                return Ok((s, Choice::Config(p)));
            }
        }
    }
    Ok((ImageSet::Upstream, Choice::Default))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_env_beats_config_beats_default() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.yaml");
        std::fs::write(&cfg, "images: debian\n").unwrap();
        let c = || Some(cfg.clone());
        assert_eq!(choose_from(Some(ImageSet::Upstream), Some("debian".into()), c()).unwrap(), (ImageSet::Upstream, Choice::Flag));
        assert_eq!(choose_from(None, Some("upstream".into()), c()).unwrap(), (ImageSet::Upstream, Choice::Env));
        assert_eq!(choose_from(None, None, c()).unwrap(), (ImageSet::Debian, Choice::Config(cfg.clone())));
        assert_eq!(choose_from(None, Some(String::new()), Some(dir.path().join("none.yaml"))).unwrap(), (ImageSet::Upstream, Choice::Default));
        assert!(choose_from(None, Some("alpine".into()), None).unwrap_err().contains("LAB_IMAGES=alpine"));
        std::fs::write(&cfg, "images: [\n").unwrap();
        assert!(choose_from(None, None, c()).unwrap_err().contains("config.yaml"));
    }

    #[test]
    fn every_template_has_an_image_in_both_sets() {
        // A template that runs lab's own program (lab's upstream) runs on `base`.
        let runs_lab = |name: &str| crate::template::render(name, "image", "dep", "lab-x", &Default::default()).is_ok_and(|(_, s)| s.lab.runs_lab);
        assert!(runs_lab("upstream"));
        for name in crate::template::names().into_iter().filter(|n| !runs_lab(n)).chain(["base"]) {
            for set in [ImageSet::Upstream, ImageSet::Debian] {
                assert!(!set.image(name).starts_with("lab-unknown"), "{set} lacks {name}");
            }
        }
    }
}

/// Where an image of a set lives in `registry` (`host[:port][/prefix]`):
/// `lab-debian/redis:7.0` -> `127.0.0.1:5000/lab-debian/redis:7.0`.
pub fn in_registry(registry: &str, image: &str) -> String {
    let image = image.strip_prefix("docker.io/").unwrap_or(image);
    let image = image.strip_prefix("library/").unwrap_or(image);
    format!("{}/{image}", registry.trim_end_matches('/'))
}

/// A reference's repository and tag (`latest` when it has none); a port in
/// the registry's host is not taken for a tag.
pub fn split_ref(r: &str) -> (String, String) {
    let name_start = r.rfind('/').map(|i| i + 1).unwrap_or(0);
    match r[name_start..].rfind(':') {
        Some(i) => (r[..name_start + i].to_string(), r[name_start + i + 1..].to_string()),
        None => (r.to_string(), "latest".to_string()),
    }
}

#[cfg(test)]
mod registry_tests {
    use super::*;

    #[test]
    fn images_keep_their_names_under_a_registry() {
        assert_eq!(in_registry("127.0.0.1:5000", "lab-debian/redis:7.0"), "127.0.0.1:5000/lab-debian/redis:7.0");
        assert_eq!(in_registry("reg.example/class/", "docker.io/library/redis:7.0"), "reg.example/class/redis:7.0");
        assert_eq!(split_ref("127.0.0.1:5000/lab-debian/redis:7.0"), ("127.0.0.1:5000/lab-debian/redis".into(), "7.0".into()));
        assert_eq!(split_ref("127.0.0.1:5000/app"), ("127.0.0.1:5000/app".into(), "latest".into()));
    }
}
