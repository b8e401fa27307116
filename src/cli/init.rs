//! `lab init`: write a learner's starter repository for a lab.

use std::path::PathBuf;

use clap::Args;

use crate::error::Error;
use crate::init::{self, Options};
use crate::lab::Catalogue;

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Lab name or folder.
    pub lab: String,
    /// Where to write the starter (default: a new folder named after the lab).
    pub dir: Option<PathBuf>,
    /// Write into a folder that is not empty: the starter's files are written over, others are kept.
    #[arg(long)]
    pub force: bool,
    /// Where the CI workflow and the dev container install lab from: a git URL
    /// for `cargo install --git`. Also LAB_GIT.
    #[arg(long, env = "LAB_GIT", value_name = "URL")]
    pub lab_git: Option<String>,
}

pub fn run(cat: &Catalogue, a: InitArgs, quiet: bool) -> Result<i32, Error> {
    let lab = cat.find(&a.lab)?;
    let dir = a.dir.clone().unwrap_or_else(|| PathBuf::from(lab.name()));
    if dir.exists() && !dir.is_dir() {
        return Err(Error::Usage(format!("{} is a file; give a folder to write the starter into", dir.display())));
    }
    init::check_dir(&dir, a.force).map_err(|e| Error::Usage(format!("{e}; choose a new or empty folder, or add --force to write the starter's files over it (other files are kept)")))?;
    let lab_git = a.lab_git.clone().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let opts = Options { go_version: init::toolchain_go_version(), lab_git: lab_git.clone() };
    let files = init::starter(&lab, &opts).map_err(|e| Error::Io(e.to_string()))?;
    init::write(&dir, &files).map_err(|e| Error::Io(e.to_string()))?;
    if !quiet {
        println!("wrote the starter of {} to {} (Go {}):", lab.name(), dir.display(), opts.go_version);
        for f in &files {
            println!("  {}", f.path);
        }
        let first = init::first_todo(&lab);
        println!("next:");
        println!("  cd {}", dir.display());
        match first {
            Some(c) => println!("  lab verify {} --solution .     # fails at `{c}`, the first check that needs your code; its TODO is in main.go", lab.name()),
            None => println!("  lab verify {} --solution .", lab.name()),
        }
        println!("  make watch                                 # the checks again on every save");
        if lab_git.is_none() {
            println!("CI (.github/workflows/lab.yml) installs lab from the repository variable LAB_GIT, the dev container from your LAB_GIT: set them to the git URL lab comes from, or run lab init again with --lab-git URL --force");
        }
    }
    Ok(0)
}
