//! The command line: the only place that knows clap. One file per subcommand;
//! each builds the parts, calls the library and returns an exit code.

mod chaos;
mod check;
mod class;
mod down;
mod export;
mod images;
mod init;
mod labs;
mod logs;
mod status;
mod up;
mod verify;

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::backend::{Backend, DockerBackend};
use crate::error::Error;
use crate::images::ImageSet;
use crate::lab::Catalogue;
use crate::session::{Session, SolutionArg};
use crate::ui::Ui;
use clap::builder::{PossibleValue, TypedValueParser as _};

const EXIT_CODES: &str = "\
Exit codes:
  0    success; every check passed
  1    the learner's service failed a check (or did not build, or did not start)
  2    bad lab definition or bad arguments
  3    the backend could not be reached (Docker engine, Kubernetes API server)
  4    lab itself could not run (missing image, dependency never ready, bake failed)
  5    `lab check`: the checker could not decide within its budget (unknown)
  130  interrupted (Ctrl-C); what lab started has been removed

Image set (first found wins): --images, LAB_IMAGES, `images:` in ~/.config/lab/config.yaml, upstream.
Backend (first found wins): --backend, LAB_BACKEND, `backend:` in the config file, docker.";

/// lab: bring up Go practice labs on Docker, break them, and verify the learner's service.
#[derive(Parser, Debug)]
#[command(name = "lab", version = crate::VERSION, about, after_help = EXIT_CODES, after_long_help = EXIT_CODES)]
pub struct Cli {
    /// Another folder of labs (searched before the built-in ones); repeatable. Also LAB_PATH.
    #[arg(long = "labs", global = true, value_name = "DIR")]
    pub labs: Vec<PathBuf>,
    /// Print only results and errors, no progress.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Where instances run: docker (default) or kubernetes. Also LAB_BACKEND, `backend:` in the config file.
    #[arg(long, global = true, value_parser = backend_kind())]
    pub backend: Option<crate::backend::BackendKind>,
    /// The kubeconfig context (default: its current one), as kubectl's --context. Also LAB_CONTEXT, `context:` in the config file.
    #[arg(long, global = true, env = "LAB_CONTEXT", value_name = "NAME")]
    pub context: Option<String>,
    /// A registry the cluster's nodes pull from, HOST[:PORT][/PREFIX]: on Kubernetes the
    /// dependencies' images are taken from it (`lab images push` puts them there) and each
    /// node's program goes there as an image instead of being uploaded into its pod.
    /// Also LAB_REGISTRY, `registry:` in the config file.
    #[arg(long, global = true, env = "LAB_REGISTRY", value_name = "REGISTRY")]
    pub registry: Option<String>,
    /// On Kubernetes, the resource limits of each instance's namespace: a YAML
    /// file overriding any of k8s/limits.yaml (each container's default limit
    /// and request, the namespace's ResourceQuota, or `quota: none`). A
    /// namespace keeps the limits it was given. Also LAB_LIMITS.
    #[arg(long, global = true, env = "LAB_LIMITS", value_name = "FILE")]
    pub limits: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the labs found in --labs folders and built in.
    #[command(after_help = "Example:\n  lab list")]
    List,
    /// Show what a lab brings up, what the learner must build, and its checks.
    #[command(after_help = "Example:\n  lab show url-shortener")]
    Show {
        /// Lab name or folder.
        lab: String,
        /// Print the learner's README too.
        #[arg(long)]
        readme: bool,
    },
    /// Write a starter repository for a lab: a Go module that builds and answers each route with a TODO naming its check, LAB.md, a Makefile, a dev container and a CI workflow running lab verify.
    #[command(
        after_help = "Examples:\n  lab init url-shortener                 # into ./url-shortener\n  lab init raft ~/src/my-raft\n  lab init task-cli . --force            # into the current folder, over what is there\n  lab init orders --lab-git https://git.example/lab.git"
    )]
    Init(init::InitArgs),
    /// Check lab definitions without starting anything (all labs when no path is given).
    #[command(after_help = "Examples:\n  lab validate\n  lab validate labs/url-shortener ./my-lab/lab.yaml")]
    Validate {
        /// Lab folders or lab.yaml files.
        paths: Vec<PathBuf>,
    },
    /// Bring a lab up: dependencies, then the learner's service, each until ready.
    #[command(
        after_help = "Examples:\n  lab up url-shortener --solution ./my-shortener\n  lab up url-shortener --target http://127.0.0.1:8080   # only Redis; run your service yourself\n  lab up url-shortener --solution ./my-shortener --student alice --images debian"
    )]
    Up(up::UpArgs),
    /// Show running instances, their containers and addresses, and the built programs of command-line labs.
    #[command(after_help = "Examples:\n  lab status\n  lab status url-shortener")]
    Status {
        /// Only this lab.
        lab: Option<String>,
        #[arg(long)]
        student: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the logs of a lab's service or of one dependency.
    #[command(after_help = "Examples:\n  lab logs url-shortener\n  lab logs url-shortener redis -f")]
    Logs {
        lab: String,
        /// The service or dependency (default: the learner's service).
        service: Option<String>,
        /// Keep printing new lines.
        #[arg(short, long)]
        follow: bool,
        /// How many past lines.
        #[arg(long, default_value_t = 100)]
        tail: usize,
        #[arg(long)]
        student: Option<String>,
    },
    /// A class: an instance of a lab per student of a roster (up, verify, status, board, credentials, down).
    #[command(subcommand)]
    Class(class::ClassCommand),
    /// Remove a lab's instance (containers, network, volumes), or all with --all.
    #[command(after_help = "Examples:\n  lab down url-shortener\n  lab down --all")]
    Down {
        #[arg(required_unless_present = "all")]
        lab: Option<String>,
        #[arg(long)]
        student: Option<String>,
        /// Every instance lab made on this engine.
        #[arg(long, conflicts_with = "lab")]
        all: bool,
    },
    /// Run a lab's checks against the learner's service and give a verdict.
    #[command(
        after_help = "Examples:\n  lab verify url-shortener --solution ./my-shortener\n  lab verify url-shortener                     # against the instance `lab up` started\n  lab verify url-shortener --solution . --output junit --report junit.xml"
    )]
    Verify(verify::VerifyArgs),
    /// Break a running lab: kill, stop, pause, restart, partition, outage, bandwidth, latency; heal; status.
    #[command(
        after_help = "Examples:\n  lab chaos raft kill 2 --for 10s\n  lab chaos kill-node                      # a scenario of the one lab that is up\n  lab chaos raft partition leader\n  lab chaos raft partition --split \"1,2|3\"\n  lab chaos url-shortener outage redis --for 5s\n  lab chaos raft latency all --delay 200ms --jitter 50ms\n  lab chaos raft status\n  lab chaos raft heal"
    )]
    Chaos(chaos::ChaosArgs),
    /// Check a saved history (lab's JSON, Porcupine JSON, Jepsen EDN or log lines).
    #[command(subcommand)]
    Check(check::CheckCommand),
    /// lab's fault proxy (runs inside the lab's network; `lab up` starts it for dependencies marked `proxy`).
    #[command(hide = true, subcommand)]
    Proxy(ProxyCommand),
    /// Image sets: list, pull the upstream ones, bake the Debian ones.
    #[command(subcommand)]
    Images(images::ImagesCommand),
    /// Export a lab as a file for another tool.
    #[command(subcommand)]
    Export(export::ExportCommand),
    /// Print lab's completions for a shell.
    #[command(
        after_help = "Examples:\n  lab completions bash > ~/.local/share/bash-completion/completions/lab\n  lab completions zsh > ~/.zfunc/_lab          # with fpath+=~/.zfunc before compinit\n  lab completions fish > ~/.config/fish/completions/lab.fish"
    )]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print lab's manual page (roff), or write one page per command into a folder.
    #[command(after_help = "Examples:\n  lab man | man -l -\n  lab man --out ~/.local/share/man/man1         # lab.1, lab-verify.1, ...")]
    Man {
        /// Write lab.1 and a page per command (lab-verify.1, ...) into this folder.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ProxyCommand {
    /// Serve links and the control port until stopped.
    Serve {
        #[arg(long, default_value = "0.0.0.0:8474")]
        control: std::net::SocketAddr,
        /// NAME=LISTEN=UPSTREAM, e.g. redis=0.0.0.0:6379=redis:6379; repeatable.
        #[arg(long = "link")]
        links: Vec<crate::chaos::proxy::Link>,
        /// The token every control session must start with (lab sets it from the instance's secret).
        #[arg(long, env = crate::chaos::proxy::TOKEN_ENV, hide_env_values = true)]
        token: Option<String>,
    },
    /// lab's webhook sink: keep the notifications POSTed to it, serve them on GET /received.
    Webhook {
        #[arg(long, default_value = "0.0.0.0:9095")]
        listen: std::net::SocketAddr,
    },
    /// lab's programmable HTTP upstream: answers calls as PUT /_lab/mode says
    /// (status, delay, hang, trickle, reset) and counts them (GET /_lab/stats).
    Upstream {
        #[arg(long, default_value = "0.0.0.0:9096")]
        listen: std::net::SocketAddr,
    },
}

/// Options shared by `up` and `verify`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// The learner's solution: a Go folder (built with `go build`), an executable, or a
    /// folder holding a built program and its files (or a .tar, .tar.gz, .tgz of it), taken as it is.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["target", "image"])]
    pub solution: Option<PathBuf>,
    /// Check a service that is already running at this URL instead.
    #[arg(long, value_name = "URL", conflicts_with = "image")]
    pub target: Option<String>,
    /// Run this image as the learner's service (e.g. one their CI pushed):
    /// its own entrypoint, the lab's environment and port. On Kubernetes it
    /// needs /bin/sh, setsid and sleep (lab's supervisor runs in it) and runs as a non-root user.
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// Run a separate instance for this student (names and ports do not clash).
    #[arg(long)]
    pub student: Option<String>,
    /// Image set: upstream (pulled) or debian (baked here).
    #[arg(long, value_parser = image_set())]
    pub images: Option<ImageSet>,
    /// How to build a Go folder.
    #[arg(long, value_parser = go_mode(), default_value = "auto")]
    pub go_mode: crate::build::GoMode,
    /// Extra environment for the learner's service, KEY=VALUE; repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// How long the service may take to become ready (default: the lab's, e.g. 20s).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub ready_timeout: Option<std::time::Duration>,
}

impl RunArgs {
    fn solution(&self) -> Result<SolutionArg, Error> {
        Ok(match (&self.solution, &self.target) {
            (Some(p), _) => SolutionArg::Path(p.clone()),
            (None, Some(t)) => {
                let u = reqwest::Url::parse(t).map_err(|e| Error::Usage(format!("--target {t}: {e}; give a URL such as http://127.0.0.1:8080")))?;
                if !matches!(u.scheme(), "http" | "https") {
                    return Err(Error::Usage(format!("--target {t}: only http and https URLs")));
                }
                SolutionArg::Target(t.trim_end_matches('/').to_string())
            }
            (None, None) => match &self.image {
                Some(r) if r.is_empty() || r.chars().any(char::is_whitespace) => return Err(Error::Usage(format!("--image {r:?}: an image reference such as registry.example:5000/me/shortener:v1"))),
                Some(r) => SolutionArg::Image(r.clone()),
                None => SolutionArg::None,
            },
        })
    }

    fn extra_env(&self) -> Result<BTreeMap<String, String>, Error> {
        self.env
            .iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
                _ => Err(Error::Usage(format!("--env {kv}: expected KEY=VALUE"))),
            })
            .collect()
    }
}

fn check_student(s: &Option<String>) -> Result<(), Error> {
    match s {
        Some(s) if !crate::plan::valid_student(s) => Err(Error::Usage(format!("--student {s}: use lower-case letters and digits with single dashes between them (at most 30)"))),
        _ => Ok(()),
    }
}

/// The backend chosen on the command line (set once by `run`).
static BACKEND: std::sync::OnceLock<(crate::backend::BackendKind, Option<String>)> = std::sync::OnceLock::new();
/// The registry chosen (flag, LAB_REGISTRY, config file), set once by `run`.
static REGISTRY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

fn chosen_registry() -> Option<String> {
    REGISTRY.get().cloned().flatten()
}

/// The namespace limits given with --limits (read once by `run`).
static LIMITS: std::sync::OnceLock<Option<crate::backend::kubernetes::limits::Limits>> = std::sync::OnceLock::new();

pub(crate) fn chosen_limits() -> Option<crate::backend::kubernetes::limits::Limits> {
    LIMITS.get().cloned().flatten()
}

async fn session(quiet: bool) -> Result<Session, Error> {
    let (kind, context) = BACKEND.get().cloned().unwrap_or((crate::backend::BackendKind::Docker, None));
    if kind == crate::backend::BackendKind::Docker && chosen_limits().is_some() {
        return Err(Error::Usage(
            "--limits (or LAB_LIMITS) sets the LimitRange and ResourceQuota of each instance's namespace on a cluster; Docker has no namespaces: drop it, or add --backend kubernetes".into(),
        ));
    }
    let mut backend = Backend::connect(kind, context.as_deref(), chosen_registry()).await?;
    if let Backend::Kubernetes(k) = backend {
        backend = Backend::Kubernetes(k.with_limits(chosen_limits()));
    }
    Ok(Session { backend, ui: Ui::new(quiet) })
}

/// A session on the Docker engine, whatever the backend (images are baked there).
fn docker_session(quiet: bool) -> Result<Session, Error> {
    Ok(Session { backend: Backend::Docker(DockerBackend::connect()?), ui: Ui::new(quiet) })
}

fn set_error_hook() {
    // Long lines stay whole when stderr is not a terminal (CI logs, tests).
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = miette::set_hook(Box::new(move |_| Box::new(miette::MietteHandlerOpts::new().wrap_lines(tty).color(tty && std::env::var_os("NO_COLOR").is_none()).build())));
}

fn exit_code(res: Result<i32, Error>) -> i32 {
    match res {
        Ok(code) => code,
        Err(e) => {
            let code = e.exit_code();
            print_error(e);
            code
        }
    }
}

/// Runs `lab check` when its arguments are in a plain form (read without
/// building clap's parser: on a small history start-up is most of a check's
/// time); `None` for every other command line, which clap then reads.
pub fn run_check_args(args: impl IntoIterator<Item = std::ffi::OsString>) -> Option<i32> {
    let mut args = args.into_iter().skip(1);
    if args.next()? != "check" {
        return None;
    }
    let command = check::CheckCommand::quick_parse(&args.collect::<Vec<_>>())?;
    set_error_hook();
    Some(exit_code(check::run(command)))
}

/// Runs the commands that need no async runtime (`check`: a checker run
/// should cost no more than the check); gives the others back.
pub fn run_blocking(cli: Cli) -> Result<i32, Cli> {
    match cli.command {
        Command::Check(c) => {
            set_error_hook();
            Ok(exit_code(check::run(c)))
        }
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "lab", &mut buf);
            set_error_hook();
            Ok(exit_code(print_out(&buf, "the completions")))
        }
        Command::Man { out } => {
            set_error_hook();
            Ok(exit_code(man(out)))
        }
        _ => Err(cli),
    }
}

/// Run the parsed command line; returns the exit code.
pub async fn run(cli: Cli) -> i32 {
    set_error_hook();
    let catalogue = Catalogue::new(cli.labs.clone());
    let quiet = cli.quiet;
    match crate::backend::choose(cli.backend, cli.context.clone(), std::env::var("LAB_BACKEND").ok(), crate::images::config_path()) {
        Ok(choice) => {
            let _ = BACKEND.set(choice);
        }
        Err(e) => return exit_code(Err(Error::Usage(e))),
    }
    match crate::backend::registry(cli.registry.clone(), crate::images::config_path()) {
        Ok(r) => {
            let _ = REGISTRY.set(r);
        }
        Err(e) => return exit_code(Err(Error::Usage(e))),
    }
    if let Some(p) = &cli.limits {
        match crate::backend::kubernetes::limits::Limits::from_file(p) {
            Ok(l) => {
                let _ = LIMITS.set(Some(l));
            }
            Err(e) => return exit_code(Err(Error::Usage(e))),
        }
    }
    // What each student's own `lab` process of `lab class` gets again.
    let mut globals = class::Globals::default();
    for d in &cli.labs {
        globals.args.extend(["--labs".into(), d.clone().into_os_string()]);
    }
    if let Some((kind, context)) = BACKEND.get() {
        globals.args.extend(["--backend".into(), (if *kind == crate::backend::BackendKind::Kubernetes { "kubernetes" } else { "docker" }).into()]);
        if let Some(c) = context {
            globals.args.extend(["--context".into(), c.into()]);
        }
    }
    if let Some(r) = chosen_registry() {
        globals.args.extend(["--registry".into(), r.into()]);
    }
    if let Some(p) = &cli.limits {
        globals.args.extend(["--limits".into(), std::path::absolute(p).unwrap_or(p.clone()).into_os_string()]);
    }
    let res = match cli.command {
        Command::List => labs::list(&catalogue),
        Command::Show { lab, readme } => labs::show(&catalogue, &lab, readme),
        Command::Validate { paths } => labs::validate(&catalogue, &paths),
        Command::Init(a) => init::run(&catalogue, a, quiet),
        Command::Up(a) => up::run(&catalogue, a, quiet).await,
        Command::Status { lab, student, json } => status::run(&catalogue, lab, student, json).await,
        Command::Logs { lab, service, follow, tail, student } => logs::run(&catalogue, &lab, service, follow, tail, student).await,
        Command::Down { lab, student, all } => down::run(&catalogue, lab, student, all, quiet).await,
        Command::Verify(a) => verify::run(&catalogue, a, quiet).await,
        Command::Class(c) => class::run(&catalogue, c, globals, quiet).await,
        Command::Images(c) => images::run(c, quiet).await,
        Command::Chaos(a) => chaos::run(&catalogue, a, quiet).await,
        Command::Check(c) => check::run(c),
        Command::Proxy(ProxyCommand::Serve { control, links, token }) => tokio::select! {
            r = crate::chaos::proxy::serve(control, links, crate::chaos::proxy::Guard::new(token)) => r.map(|_| 0).map_err(|e| Error::Io(format!("proxy: {e}"))),
            _ = interrupted() => Ok(0),
        },
        Command::Proxy(ProxyCommand::Webhook { listen }) => tokio::select! {
            r = crate::probe::webhook::serve(listen) => r.map(|_| 0).map_err(|e| Error::Io(format!("webhook sink: {e}"))),
            _ = interrupted() => Ok(0),
        },
        Command::Proxy(ProxyCommand::Upstream { listen }) => tokio::select! {
            r = crate::probe::upstream::serve(listen) => r.map(|_| 0).map_err(|e| Error::Io(format!("upstream: {e}"))),
            _ = interrupted() => Ok(0),
        },
        Command::Export(c) => export::run(&catalogue, c),
        Command::Completions { .. } | Command::Man { .. } => unreachable!("run_blocking runs them"),
    };
    exit_code(res)
}

pub(crate) use crate::session::interrupted;

/// Write to stdout; a reader that stopped early (`| head`) is not an error.
fn print_out(bytes: &[u8], what: &str) -> Result<i32, Error> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Io(format!("writing {what}: {e}"))),
        _ => Ok(0),
    }
}

/// `lab man`: the manual page on stdout, or a page per command into a folder.
fn man(out: Option<PathBuf>) -> Result<i32, Error> {
    let cmd = <Cli as clap::CommandFactory>::command();
    match out {
        None => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut buf).map_err(|e| Error::Io(format!("rendering the manual page: {e}")))?;
            print_out(&buf, "the manual page")?;
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|e| Error::Io(format!("making {}: {e}", dir.display())))?;
            clap_mangen::generate_to(cmd, &dir).map_err(|e| Error::Io(format!("writing the manual pages into {}: {e}", dir.display())))?;
        }
    }
    Ok(0)
}

/// Print an error with miette; the problems of a lab definition one by one.
pub(crate) fn print_error(e: Error) {
    match e {
        Error::Load(crate::lab::LoadError::Invalid(errs)) => print_definition_errors(errs),
        other => eprintln!("{:?}", miette::Report::new(other)),
    }
}

pub(crate) fn print_definition_errors(errs: crate::lab::DefinitionErrors) {
    let n = errs.errors.len();
    for d in errs.errors {
        eprintln!("{:?}", miette::Report::new(d));
    }
    if n > 1 {
        eprintln!("{n} problems in {}", errs.file);
    }
}

// The library's enums know nothing of clap: their names and help live here.

/// `--images`: the image sets.
pub(crate) fn image_set() -> impl clap::builder::TypedValueParser<Value = ImageSet> {
    clap::builder::PossibleValuesParser::new([
        PossibleValue::new("upstream").help("Official images (redis, postgres, rabbitmq, prom/*), pulled from a registry"),
        PossibleValue::new("debian").help("Images baked here from Debian packages (`lab images bake`); no registry needed"),
    ])
    .map(|s| if s == "debian" { ImageSet::Debian } else { ImageSet::Upstream })
}

/// `--backend`: where instances run.
fn backend_kind() -> impl clap::builder::TypedValueParser<Value = crate::backend::BackendKind> {
    use crate::backend::BackendKind;
    clap::builder::PossibleValuesParser::new([
        PossibleValue::new("docker").help("Containers on the local Docker engine (DOCKER_HOST selects another)"),
        PossibleValue::new("kubernetes").alias("k8s").help("A namespace per instance on the cluster of KUBECONFIG / --context"),
    ])
    .map(|s| BackendKind::parse(&s).unwrap_or(BackendKind::Docker))
}

/// `--go-mode`: how to build a Go folder.
fn go_mode() -> impl clap::builder::TypedValueParser<Value = crate::build::GoMode> {
    use crate::build::GoMode;
    clap::builder::PossibleValuesParser::new([
        PossibleValue::new("auto").help("Module mode when the folder has a go.mod whose requires are here (none, vendor/, the module cache); otherwise GOPATH mode with Debian's Go libraries and the go.mod's (or the toolchain's) Go version"),
        PossibleValue::new("module").help("`go build` in module mode (needs a module proxy, the module cache or a vendor folder)"),
        PossibleValue::new("gopath").help("GOPATH mode with Debian's Go libraries (/usr/share/gocode), keeping the Go version's defaults; works offline"),
    ])
    .map(|s| match s.as_str() {
        "module" => GoMode::Module,
        "gopath" => GoMode::Gopath,
        _ => GoMode::Auto,
    })
}

/// `--output`: report formats.
pub(crate) fn report_format() -> impl clap::builder::TypedValueParser<Value = crate::report::Format> {
    use crate::report::Format;
    clap::builder::PossibleValuesParser::new([
        PossibleValue::new("terminal").help("Stages, checks, timings and failures, for people"),
        PossibleValue::new("json").help("One JSON document, for scripts"),
        PossibleValue::new("junit").help("JUnit XML, which CI systems render"),
        PossibleValue::new("html").help("A self-contained HTML page of the checks; for labs that run a workload, its timeline and latencies too"),
        PossibleValue::new("github").help("GitHub Actions workflow commands: a group per stage, an error annotation (title = the check) per failed check"),
    ])
    .map(|s| match s.as_str() {
        "json" => Format::Json,
        "junit" => Format::Junit,
        "html" => Format::Html,
        "github" => Format::Github,
        _ => Format::Terminal,
    })
}
