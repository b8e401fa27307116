//! `lab images`: list the image sets, pull the upstream one, bake the Debian one.

use clap::Subcommand;

use super::docker_session;
use crate::error::{exit, Error};
use crate::images::{self, debian, ImageSet};

#[derive(Subcommand, Debug)]
pub enum ImagesCommand {
    /// Show both sets and which images are on this machine.
    #[command(after_help = "Example:\n  lab images list")]
    List,
    /// Pull the upstream set from its registry.
    #[command(after_help = "Example:\n  lab images pull redis base")]
    Pull {
        /// Only these (redis, postgres, rabbitmq, prometheus, alertmanager, base).
        names: Vec<String>,
    },
    /// Build the debian set here from Debian packages (needs root and debootstrap).
    #[command(after_help = "Examples:\n  sudo lab images bake              # every image missing\n  sudo lab images bake redis base   # only these\n  sudo lab images bake --force redis")]
    Bake {
        /// Only these (redis, postgres, rabbitmq, prometheus, alertmanager, base).
        names: Vec<String>,
        /// Bake again even if the image exists.
        #[arg(long)]
        force: bool,
    },
    /// Put the chosen set's images (those on this machine) into a registry, for
    /// clusters whose nodes pull from it (air-gapped classes): each keeps its
    /// name under the registry, e.g. 127.0.0.1:5000/lab-debian/redis:7.0.
    #[command(after_help = "Examples:\n  lab images push --registry 127.0.0.1:5000 --images debian\n  lab images push --registry registry.class.example:5000/lab redis base")]
    Push {
        /// Only these (redis, postgres, rabbitmq, prometheus, alertmanager, base).
        names: Vec<String>,
        /// The set: upstream or debian (default: as `up` chooses it).
        #[arg(long, value_parser = super::image_set())]
        images: Option<ImageSet>,
    },
}

fn pick(set: ImageSet, names: &[String]) -> Result<Vec<(&'static str, String)>, Error> {
    let all = set.all();
    for n in names {
        if !all.iter().any(|(a, _)| a == n) {
            return Err(Error::Usage(format!("no image `{n}`; known: {}", all.iter().map(|(a, _)| *a).collect::<Vec<_>>().join(", "))));
        }
    }
    Ok(all.into_iter().filter(|(n, _)| names.is_empty() || names.iter().any(|x| x == n)).collect())
}

pub async fn run(cmd: ImagesCommand, quiet: bool) -> Result<i32, Error> {
    let s = docker_session(quiet)?;
    s.backend.ping().await?;
    match cmd {
        ImagesCommand::List => {
            let (chosen, how) = images::choose(None).map_err(Error::Usage)?;
            println!("chosen set: {chosen} ({how:?})\n");
            for set in [ImageSet::Upstream, ImageSet::Debian] {
                println!("{set}:");
                let all = set.all();
                let tags: Vec<String> = all.iter().map(|(_, t)| t.clone()).collect();
                let missing = s.backend.missing_images(&tags).await?;
                for (name, tag) in all {
                    println!("  {name:<14} {tag:<30} {}", if missing.contains(&tag) { "missing" } else { "present" });
                }
            }
            Ok(exit::OK)
        }
        ImagesCommand::Pull { names } => {
            for (_, tag) in pick(ImageSet::Upstream, &names)? {
                let task = s.ui.task(&format!("pulling {tag}"));
                match s.backend.pull(&tag, &|l| task.set(l)).await {
                    Ok(()) => task.finish(&format!("pulled {tag}")),
                    Err(e) => {
                        task.fail();
                        return Err(e.into());
                    }
                }
            }
            Ok(exit::OK)
        }
        ImagesCommand::Push { names, images: set } => {
            let registry = super::chosen_registry().ok_or_else(|| Error::Usage("lab images push needs --registry HOST[:PORT][/PREFIX] (or LAB_REGISTRY, `registry:` in the config file)".into()))?;
            let (set, _) = images::choose(set).map_err(Error::Usage)?;
            let chosen = pick(set, &names)?;
            let tags: Vec<String> = chosen.iter().map(|(_, t)| t.clone()).collect();
            let missing = s.backend.missing_images(&tags).await?;
            if !missing.is_empty() {
                return Err(Error::Usage(format!(
                    "not on this machine: {}; {} first",
                    missing.join(", "),
                    if set == ImageSet::Debian { "bake them (`lab images bake`)" } else { "pull them (`lab images pull`)" }
                )));
            }
            for (_, tag) in chosen {
                let target = images::in_registry(&registry, &tag);
                let task = s.ui.task(&format!("pushing {tag} to {target}"));
                let crate::backend::Backend::Docker(docker) = &s.backend else { unreachable!("images commands run on the local engine") };
                match docker.push(&tag, &target, &|l| task.set(l)).await {
                    Ok(()) => task.finish(&format!("pushed {target}")),
                    Err(e) => {
                        task.fail();
                        return Err(e.into());
                    }
                }
            }
            Ok(exit::OK)
        }
        ImagesCommand::Bake { names, force } => {
            for (name, tag) in pick(ImageSet::Debian, &names)? {
                if !force && s.backend.missing_images(std::slice::from_ref(&tag)).await?.is_empty() {
                    s.ui.done(&format!("{tag} is present (--force bakes it again)"));
                    continue;
                }
                let recipe = debian::recipe(name).expect("listed by the set");
                s.bake(recipe).await?;
            }
            Ok(exit::OK)
        }
    }
}
