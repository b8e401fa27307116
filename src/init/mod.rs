//! `lab init`: a learner's starter repository for a lab, rendered with tera
//! from the lab's own definition (its `starter:` routes and work, the
//! service's environment and port, its checks' words), never copied per lab.
//!
//! The starter builds offline with lab's own build path, starts, answers the
//! readiness probe, and answers each route of the contract "not written yet"
//! with a TODO naming the check that exercises it, so that the first
//! `lab verify` fails at the first check that needs the learner's code, with
//! the TODO's words (in the answer, and in the service's log the failure shows).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::lab::{Check, Lab, StarterKind};

const GO_MOD: &str = include_str!("templates/go.mod.tera");
const MAKEFILE: &str = include_str!("templates/Makefile.tera");
const GITIGNORE: &str = include_str!("templates/gitignore.tera");
const DEVCONTAINER: &str = include_str!("templates/devcontainer.json.tera");
const WORKFLOW: &str = include_str!("templates/lab.yml.tera");
const MAIN_HTTP: &str = include_str!("templates/main_http.go.tera");
const MAIN_GRPC: &str = include_str!("templates/main_grpc.go.tera");
const MAIN_CLI: &str = include_str!("templates/main_cli.go.tera");

/// Why a starter could not be written.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum InitError {
    /// (`lab init` adds what to do: another folder, or --force.)
    #[error("{dir} is not empty (it holds {holds})")]
    NotEmpty { dir: PathBuf, holds: String },
    #[error("the lab {lab} names the file {file} in `starter.files`, but its folder has no such file")]
    #[diagnostic(help("add the file to the lab's folder or drop it from `starter.files`"))]
    MissingFile { lab: String, file: String },
    #[error("rendering the starter's {file}: {why}")]
    Render { file: &'static str, why: String },
    #[error("writing {path}: {why}")]
    Write { path: PathBuf, why: String },
}

/// The options of a starter that do not come from the lab.
#[derive(Debug, Clone)]
pub struct Options {
    /// The Go version of go.mod (`1.23`).
    pub go_version: String,
    /// Where CI and the dev container install lab from (a git URL for
    /// `cargo install --git`); none: the variable LAB_GIT of the CI repository
    /// and of the machine opening the dev container.
    pub lab_git: Option<String>,
}

/// One file of a starter: its path inside the folder and its text.
#[derive(Debug, Clone)]
pub struct File {
    pub path: String,
    pub text: String,
}

#[derive(Serialize)]
struct LabInfo<'a> {
    name: &'a str,
    title: &'a str,
    module: Option<&'a str>,
}

#[derive(Serialize)]
struct EnvVar {
    key: String,
    var: String,
    default: String,
    shown: String,
}

#[derive(Serialize)]
struct RouteCtx {
    route: String,
    /// What the Go code registers: a ServeMux pattern, a gRPC full method, a command.
    pattern: String,
    check: Option<String>,
    /// Whether it is the readiness probe's route (answered 200, not a TODO).
    ready: bool,
    todo: String,
    comment: Vec<String>,
}

#[derive(Serialize)]
struct WorkCtx {
    todo: String,
    comment: Vec<String>,
}

#[derive(Serialize)]
struct Require {
    module: String,
    version: String,
}

/// The Go toolchain's version as go.mod writes it (`1.23`), or 1.23 (the
/// version lab's machines build with) when no toolchain answers.
pub fn toolchain_go_version() -> String {
    let asked = crate::build::find_go().and_then(|go| std::process::Command::new(go).args(["env", "GOVERSION"]).stdin(std::process::Stdio::null()).output().ok());
    asked
        .and_then(|o| {
            let v = String::from_utf8_lossy(&o.stdout).trim().trim_start_matches("go").to_string();
            let mut parts = v.split('.');
            match (parts.next(), parts.next()) {
                (Some(a), Some(b)) if a.chars().all(|c| c.is_ascii_digit()) && !a.is_empty() && b.chars().all(|c| c.is_ascii_digit()) && !b.is_empty() => Some(format!("{a}.{b}")),
                _ => None,
            }
        })
        .unwrap_or_else(|| "1.23".to_string())
}

/// The files of the lab's starter.
pub fn starter(lab: &Lab, opts: &Options) -> Result<Vec<File>, InitError> {
    let def = &lab.def;
    let kind = def.starter_kind();
    let mut ctx = tera::Context::new();
    ctx.insert("lab", &LabInfo { name: &def.name, title: &def.title, module: def.module.as_deref() });
    ctx.insert("go_version", &opts.go_version);
    ctx.insert("module_path", &def.name);
    let requires: Vec<Require> = def.starter.libraries.iter().filter_map(|l| l.version.as_ref().map(|v| Require { module: l.module.clone(), version: v.clone() })).collect();
    let mut debian: Vec<String> = Vec::new();
    for l in &def.starter.libraries {
        if !debian.contains(&l.debian) {
            debian.push(l.debian.clone());
        }
    }
    ctx.insert("requires", &requires);
    ctx.insert("debian_packages", &debian);
    // Without a URL, CI takes the repository's (or organisation's) variable
    // LAB_GIT, and the dev container the LAB_GIT of the machine that opens it.
    let (workflow_git, container_git) = match &opts.lab_git {
        Some(u) => (u.clone(), u.clone()),
        None => ("${{ vars.LAB_GIT }}".to_string(), "${localEnv:LAB_GIT}".to_string()),
    };
    ctx.insert("workflow_git", &workflow_git);
    ctx.insert("container_git", &container_git);
    let install = format!(
        "{}cargo install --locked --git \"${{LAB_GIT:?set LAB_GIT to the git URL lab is installed from}}\" lab",
        if debian.is_empty() { String::new() } else { format!("sudo apt-get update && sudo apt-get install -y {} && ", debian.join(" ")) },
    );
    ctx.insert("install_command", &install);
    ctx.insert("devcontainer_name", &format!("lab: {}", def.name));
    ctx.insert("env", &env_vars(lab));
    ctx.insert("listen", &listen_expr(lab));
    ctx.insert("program", &def.service.name);
    let routes = routes(lab, kind);
    ctx.insert("commands", &routes.iter().map(|r| r.pattern.clone()).collect::<Vec<_>>());
    ctx.insert("routes", &routes);
    let work: Vec<WorkCtx> = def
        .starter
        .work
        .iter()
        .map(|w| {
            let todo = format!("TODO({}): {}", w.check, one_line(&w.todo));
            WorkCtx { comment: wrap(&todo), todo }
        })
        .collect();
    ctx.insert("work", &work);
    let protos: Vec<&String> = def.starter.files.iter().filter(|f| f.ends_with(".proto")).collect();
    ctx.insert("protos", &protos);
    // The generated code goes into a package of its own (two packages cannot
    // share main's folder), named as the first .proto's go_package says.
    let proto_pkg = protos.first().and_then(|f| lab.source.read_file(f)).and_then(|t| go_package_name(&t)).unwrap_or_else(|| "pb".to_string());
    ctx.insert("proto_pkg", &proto_pkg);
    let service = def.starter.routes.first().and_then(|r| route_pattern_service(&r.route)).unwrap_or_else(|| "Service".to_string());
    ctx.insert("grpc_service", &service);

    let render =
        |file: &'static str, template: &str| -> Result<String, InitError> { tera::Tera::one_off(template, &ctx, false).map_err(|e| InitError::Render { file, why: crate::lab::tera_message(&e) }) };
    let main = match kind {
        StarterKind::Http => MAIN_HTTP,
        StarterKind::Grpc => MAIN_GRPC,
        StarterKind::Cli => MAIN_CLI,
    };
    let makefile = render("Makefile", MAKEFILE)?;
    let mut files = vec![
        File { path: "go.mod".into(), text: render("go.mod", GO_MOD)? },
        File { path: "main.go".into(), text: render("main.go", main)? },
        File { path: "Makefile".into(), text: makefile },
        File { path: ".gitignore".into(), text: render(".gitignore", GITIGNORE)? },
        File { path: ".devcontainer/devcontainer.json".into(), text: render("devcontainer.json", DEVCONTAINER)? },
        File { path: ".github/workflows/lab.yml".into(), text: render("lab.yml", WORKFLOW)? },
    ];
    files.push(File { path: "LAB.md".into(), text: lab.readme().unwrap_or_else(|| format!("# {}\n\n{}\n", def.title, def.summary)) });
    for f in &def.starter.files {
        let text = lab.source.read_file(f).ok_or_else(|| InitError::MissingFile { lab: def.name.clone(), file: f.clone() })?;
        files.push(File { path: f.clone(), text });
    }
    Ok(files)
}

/// What in `dir` stops a starter being written there (a non-empty folder), unless forced.
pub fn check_dir(dir: &Path, force: bool) -> Result<(), InitError> {
    if force {
        return Ok(());
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    let mut names: Vec<String> = entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    if names.is_empty() {
        return Ok(());
    }
    names.sort();
    let n = names.len();
    let mut holds = names.into_iter().take(3).collect::<Vec<_>>().join(", ");
    if n > 3 {
        holds.push_str(&format!(" and {} more", n - 3));
    }
    Err(InitError::NotEmpty { dir: dir.to_path_buf(), holds })
}

/// Write the files under `dir` (made if missing).
pub fn write(dir: &Path, files: &[File]) -> Result<(), InitError> {
    for f in files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| InitError::Write { path: parent.to_path_buf(), why: e.to_string() })?;
        }
        std::fs::write(&path, &f.text).map_err(|e| InitError::Write { path: path.clone(), why: e.to_string() })?;
    }
    Ok(())
}

/// The service's environment as Go variables: the lab's literal values are
/// the defaults; a templated one (an address lab fills in) has none.
fn env_vars(lab: &Lab) -> Vec<EnvVar> {
    lab.def
        .service
        .env
        .iter()
        .map(|(k, v)| {
            let templated = v.contains("{{") || v.contains("{%");
            EnvVar {
                key: k.clone(),
                var: go_name(k),
                default: if templated { String::new() } else { v.clone() },
                shown: if templated { format!("set by lab ({})", one_line(v)) } else { format!("{} in the lab", one_line(v)) },
            }
        })
        .collect()
}

/// The Go expression of the address to listen on: from the variable that
/// holds the port (`":" + port`) or the whole address, else the port itself.
fn listen_expr(lab: &Lab) -> String {
    let svc = &lab.def.service;
    let port = svc.port.to_string();
    if let Some((k, _)) = svc.env.iter().find(|(_, v)| **v == port) {
        return format!("\":\" + {}", go_name(k));
    }
    if let Some((k, _)) = svc.env.iter().find(|(_, v)| v.ends_with(&format!(":{port}")) && !v.contains("{{")) {
        return go_name(k);
    }
    format!("\":{port}\"")
}

/// A Go identifier for an environment variable: REDIS_ADDR → redisAddr.
fn go_name(key: &str) -> String {
    let mut out = String::new();
    for (i, part) in key.split(|c: char| !c.is_ascii_alphanumeric()).filter(|p| !p.is_empty()).enumerate() {
        let lower = part.to_ascii_lowercase();
        if i == 0 {
            out.push_str(&lower);
        } else {
            let mut c = lower.chars();
            if let Some(f) = c.next() {
                out.push(f.to_ascii_uppercase());
                out.extend(c);
            }
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "env");
    }
    const RESERVED: &[&str] = &[
        "break",
        "case",
        "chan",
        "const",
        "continue",
        "default",
        "defer",
        "else",
        "fallthrough",
        "for",
        "func",
        "go",
        "goto",
        "if",
        "import",
        "interface",
        "map",
        "package",
        "range",
        "return",
        "select",
        "struct",
        "switch",
        "type",
        "var",
        "env",
        "main",
        "todo",
        "todos",
        "log",
        "http",
        "os",
        "fmt",
        "net",
        "any",
        "string",
        "len",
        "new",
        "make",
        "error",
        "true",
        "false",
        "nil",
    ];
    if RESERVED.contains(&out.as_str()) {
        out.push_str("Env");
    }
    out
}

fn find_check<'a>(lab: &'a Lab, name: &str) -> Option<&'a Check> {
    lab.def.stages.iter().flat_map(|s| s.checks.iter()).find(|c| c.name == name)
}

/// The routes of the starter: the lab's, with (for an HTTP service) the
/// readiness probe's first when the lab does not list it.
fn routes(lab: &Lab, kind: StarterKind) -> Vec<RouteCtx> {
    let def = &lab.def;
    let ready_path = def.service.ready.as_ref().filter(|r| !r.grpc && !r.tcp).map(|r| r.path.clone());
    let mut out = Vec::new();
    let mut listed_ready = false;
    for r in &def.starter.routes {
        let pattern = crate::lab::route_pattern(kind, &r.route);
        let is_ready = kind == StarterKind::Http && ready_path.as_deref().is_some_and(|p| pattern == format!("GET {p}") || pattern == p);
        listed_ready |= is_ready;
        let check = r.check.as_deref().and_then(|c| find_check(lab, c));
        let what = match kind {
            StarterKind::Cli => format!("`{} {}`", def.service.name, r.route),
            _ => r.route.clone(),
        };
        let todo = match check {
            Some(c) => format!("TODO({}): {what} is not written yet; the check {} expects: {}", c.name, c.name, one_line(&c.expect)),
            None => format!("TODO: {what} is not written yet (LAB.md describes it; no check calls it)"),
        };
        let mut comment = Vec::new();
        if let Some(c) = check {
            if is_ready {
                comment.extend(wrap(&format!("lab's readiness probe: it answers 200 already. The check {} expects: {}", c.name, one_line(&c.expect))));
            } else {
                comment.extend(wrap(&format!("expects: {}", one_line(&c.expect))));
            }
            if !c.hint.trim().is_empty() {
                comment.extend(wrap(&format!("hint: {}", one_line(&c.hint))));
            }
        } else if is_ready {
            comment.push("lab's readiness probe: it answers 200 already.".into());
        }
        out.push(RouteCtx { route: r.route.clone(), pattern, check: check.map(|c| c.name.clone()), ready: is_ready, todo, comment });
    }
    if let (StarterKind::Http, Some(p), false) = (kind, ready_path, listed_ready) {
        out.insert(
            0,
            RouteCtx {
                route: format!("GET {p}"),
                pattern: format!("GET {p}"),
                check: None,
                ready: true,
                todo: String::new(),
                comment: vec!["lab's readiness probe: lab waits for it to answer 200 before the checks.".into()],
            },
        );
    }
    out
}

/// The Go package a .proto's `option go_package` names (`lab/x/authpb` or `x;authpb` → authpb).
fn go_package_name(proto: &str) -> Option<String> {
    let line = proto.lines().map(str::trim).find(|l| l.starts_with("option") && l.contains("go_package"))?;
    let value = line.split('"').nth(1)?;
    let name = match value.split_once(';') {
        Some((_, n)) => n,
        None => value.rsplit('/').next()?,
    };
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then(|| name.to_string())
}

/// The service of a gRPC route: `/auth.v1.Auth/Login` → Auth.
fn route_pattern_service(route: &str) -> Option<String> {
    let full = route.trim().trim_start_matches('/').split('/').next()?;
    full.rsplit('.').next().filter(|s| !s.is_empty()).map(str::to_string)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Lines of a Go comment, at most 90 columns.
fn wrap(s: &str) -> Vec<String> {
    textwrap::wrap(s, 90).into_iter().map(|l| l.into_owned()).collect()
}

/// The first check (in the lab's order) that a fresh starter cannot pass:
/// the first one a TODO of its routes or work names.
pub fn first_todo(lab: &Lab) -> Option<String> {
    let kind = lab.def.starter_kind();
    let named: Vec<String> = routes(lab, kind).into_iter().filter(|r| !r.ready).filter_map(|r| r.check).chain(lab.def.starter.work.iter().map(|w| w.check.clone())).collect();
    lab.def.stages.iter().flat_map(|s| s.checks.iter()).find(|c| named.contains(&c.name)).map(|c| c.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_names_become_go_identifiers() {
        assert_eq!(go_name("REDIS_ADDR"), "redisAddr");
        assert_eq!(go_name("PORT"), "port");
        assert_eq!(go_name("JWT_SECRET"), "jwtSecret");
        assert_eq!(go_name("TYPE"), "typeEnv");
        assert_eq!(go_name("2FA"), "env2fa");
    }

    #[test]
    fn the_generated_code_package_comes_from_go_package() {
        assert_eq!(go_package_name("syntax = \"proto3\";\noption go_package = \"lab/grpcauth/authpb\";").as_deref(), Some("authpb"));
        assert_eq!(go_package_name("option go_package = \"example.com/x;xpb\";").as_deref(), Some("xpb"));
        assert_eq!(go_package_name("package a;"), None);
        assert_eq!(route_pattern_service("/auth.v1.Auth/Login").as_deref(), Some("Auth"));
    }
}
