//! The resource limits of an instance's namespace on a cluster: each
//! container's default limit and request (a LimitRange) and the namespace's
//! total (a ResourceQuota). The defaults are `k8s/limits.yaml`; `--limits
//! FILE` overrides any of them, for a whole class or one instance.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The defaults, `k8s/limits.yaml`.
pub const DEFAULTS: &str = include_str!("../../../k8s/limits.yaml");
/// The namespace annotation keeping the limits it was given (JSON), so that
/// a later `up` without `--limits` keeps them.
pub const ANNOTATION: &str = "lab.limits";

/// The limits of one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Each container's default limit (resource → quantity).
    pub limit: BTreeMap<String, String>,
    /// Each container's default request.
    pub request: BTreeMap<String, String>,
    /// The ResourceQuota's `hard`; `None`: no quota.
    pub quota: Option<BTreeMap<String, String>>,
}

/// A limits file as written: every part optional.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    container: Option<ContainerPart>,
    #[serde(default)]
    quota: Option<QuotaPart>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ContainerPart {
    #[serde(default)]
    limit: BTreeMap<String, Quantity>,
    #[serde(default)]
    request: BTreeMap<String, Quantity>,
}

/// `quota:` as written: a map of resource to quantity, or the word `none`.
enum QuotaPart {
    Map(BTreeMap<String, Quantity>),
    None,
}

impl<'de> Deserialize<'de> for QuotaPart {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = QuotaPart;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of resource to quantity (pods: 16, limits.memory: 16Gi, ...) or `none`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<QuotaPart, E> {
                if v == "none" {
                    Ok(QuotaPart::None)
                } else {
                    Err(E::custom(format!("quota: {v:?}: write a map of resource to quantity (pods: 16, ...) or `quota: none`")))
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<QuotaPart, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((k, v)) = m.next_entry::<String, Quantity>()? {
                    out.insert(k, v);
                }
                Ok(QuotaPart::Map(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// A Kubernetes quantity (`512Mi`, `0.5`, `500m`, `16`), written as a string or a number.
struct Quantity(String);

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor, so that an error carries the scalar's own line.
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Quantity;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a quantity such as 512Mi, 1Gi, 500m, 2")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Quantity, E> {
                if quantity_ok(v) {
                    Ok(Quantity(v.to_string()))
                } else {
                    Err(E::custom(format!("{v:?} is not a Kubernetes quantity; write a number with an optional suffix: 512Mi, 1Gi, 500m, 2")))
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(V)
    }
}

/// Whether `s` is a quantity as Kubernetes reads one: a decimal number, then
/// a binary (Ki…Ei) or decimal (m, k, M…E) suffix or an exponent.
pub fn quantity_ok(s: &str) -> bool {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[mkMGTPE]|[eE][+-]?[0-9]+)?$").expect("regex")).is_match(s)
}

impl Limits {
    /// The defaults (`k8s/limits.yaml`).
    pub fn defaults() -> Limits {
        let none = Limits { limit: BTreeMap::new(), request: BTreeMap::new(), quota: Some(BTreeMap::new()) };
        none.overridden(DEFAULTS, "k8s/limits.yaml").expect("k8s/limits.yaml is a limits file")
    }

    /// These limits with a limits file's over them; the error names the
    /// file, line and column, and what a limits file holds.
    pub fn overridden(&self, text: &str, file: &str) -> Result<Limits, String> {
        let f: File = if text.trim().is_empty() {
            File::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| {
                let at = e.location().map(|l| format!(":{}:{}", l.line(), l.column())).unwrap_or_default();
                let what = e.to_string();
                let what = what.split(" at line ").next().unwrap_or_default();
                format!("{file}{at}: {what}; a limits file holds `container: {{limit: {{memory: 1Gi, cpu: \"1\"}}, request: {{...}}}}` and `quota: {{pods: 16, ...}}` or `quota: none` (see k8s/limits.yaml)")
            })?
        };
        let mut out = self.clone();
        if let Some(c) = f.container {
            out.limit.extend(c.limit.into_iter().map(|(k, v)| (k, v.0)));
            out.request.extend(c.request.into_iter().map(|(k, v)| (k, v.0)));
        }
        match f.quota {
            Some(QuotaPart::None) => out.quota = None,
            Some(QuotaPart::Map(m)) => out.quota.get_or_insert_with(BTreeMap::new).extend(m.into_iter().map(|(k, v)| (k, v.0))),
            None => {}
        }
        Ok(out)
    }

    /// The defaults with the file at `path` over them.
    pub fn from_file(path: &Path) -> Result<Limits, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("--limits {}: cannot be read: {e}", path.display()))?;
        Limits::defaults().overridden(&text, &path.display().to_string())
    }

    /// As kept in the namespace's annotation.
    pub fn to_annotation(&self) -> String {
        serde_json::to_string(self).expect("limits serialize")
    }

    pub fn from_annotation(s: &str) -> Option<Limits> {
        serde_json::from_str(s).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_hold_a_quota_and_container_limits() {
        let d = Limits::defaults();
        assert_eq!(d.limit["memory"], "1Gi");
        assert_eq!(d.request["cpu"], "10m");
        assert_eq!(d.quota.as_ref().unwrap()["pods"], "16");
        assert_eq!(Limits::from_annotation(&d.to_annotation()), Some(d));
    }

    #[test]
    fn a_file_overrides_only_what_it_names_and_quota_none_removes_the_quota() {
        let d = Limits::defaults();
        let l = d.overridden("container:\n  limit: {memory: 512Mi}\nquota:\n  pods: 4\n", "class.yaml").unwrap();
        assert_eq!((l.limit["memory"].as_str(), l.limit["cpu"].as_str()), ("512Mi", "1"));
        assert_eq!(l.quota.as_ref().unwrap()["pods"], "4");
        assert_eq!(l.quota.as_ref().unwrap()["limits.memory"], "16Gi");
        assert_eq!(d.overridden("quota: none\n", "f").unwrap().quota, None);
        assert_eq!(d.overridden("", "f").unwrap(), d);
    }

    #[test]
    fn a_bad_limits_file_is_refused_at_its_line() {
        let d = Limits::defaults();
        let e = d.overridden("container:\n  limit:\n    memory: lots\n", "class.yaml").unwrap_err();
        assert!(e.starts_with("class.yaml:3:") && e.contains("\"lots\" is not a Kubernetes quantity"), "{e}");
        let e = d.overridden("containers:\n  limit: {}\n", "class.yaml").unwrap_err();
        assert!(e.starts_with("class.yaml:1:") && e.contains("unknown field `containers`"), "{e}");
        let e = d.overridden("quota: off\n", "class.yaml").unwrap_err();
        assert!(e.starts_with("class.yaml:1:") && e.contains("quota: none"), "{e}");
        let e = d.overridden("quota:\n  pods: 4\n  services: many\n", "class.yaml").unwrap_err();
        assert!(e.starts_with("class.yaml:3:") && e.contains("\"many\" is not a Kubernetes quantity"), "{e}");
    }

    #[test]
    fn quantities_are_read_as_kubernetes_reads_them() {
        for ok in ["1", "0.5", "500m", "512Mi", "1Gi", "2k", "1e3", "16", ".5"] {
            assert!(quantity_ok(ok), "{ok}");
        }
        for bad in ["", "lots", "1 Gi", "1GB", "-1", "1Mb", "Gi"] {
            assert!(!quantity_ok(bad), "{bad}");
        }
    }
}
