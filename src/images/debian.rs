//! Recipes for the `debian` image set: images built from Debian packages with
//! debootstrap and `docker import`, shaped like the upstream images so one
//! compose template serves both sets.
//!
//! This machine has no container registry, so nothing can be pulled. Each image
//! is baked locally from Debian bookworm packages in these steps:
//!
//! 1. `debootstrap --variant=minbase --include=PACKAGES bookworm ROOTFS MIRROR`
//!    (or: one shared minbase rootfs, copied, then
//!    `chroot ROOTFS apt-get install -y --no-install-recommends PACKAGES`
//!    with a `policy-rc.d` that exits 101; both give the same package set,
//!    because debootstrap does not install Recommends either). Measured on a
//!    2-core machine with a warm package cache, a debootstrap per image takes
//!    28-85 s (six images: about 280 s); one minbase debootstrap (22-26 s)
//!    plus 6-17 s of apt per image took about 120 s for all six;
//! 2. write [`Recipe::files`] into the rootfs (creating parent directories);
//! 3. run [`Recipe::setup`] with `chroot ROOTFS /bin/sh -ec SETUP` (no `/proc`
//!    is needed by any of the scripts);
//! 4. clean: `rm -rf ROOTFS/var/cache/apt/archives/*.deb ROOTFS/var/lib/apt/lists/*`;
//! 5. `tar -C ROOTFS -c . | docker import -c CHANGE... - TAG`.
//!
//! What "shaped like upstream" means here, image by image:
//!
//! * `redis` behaves like `redis:7`: entrypoint switches to user `redis` in
//!   `/data`, `CMD ["redis-server"]` listens on all addresses, and protected
//!   mode is off (upstream compiles it off; here the entrypoint adds
//!   `--protected-mode no` unless the command line sets it), so `command:`
//!   overrides such as `redis-server --appendonly yes` keep working.
//! * `postgres` behaves like `postgres:15`: `POSTGRES_USER`, `POSTGRES_PASSWORD`,
//!   `POSTGRES_DB`, `POSTGRES_INITDB_ARGS`, `POSTGRES_HOST_AUTH_METHOD`,
//!   `/docker-entrypoint-initdb.d`, data in `/var/lib/postgresql/data`, the
//!   server runs as `postgres`, locale `en_US.utf8` like upstream. Upstream
//!   sets `STOPSIGNAL SIGINT` (fast shutdown; SIGTERM is PostgreSQL's "smart"
//!   shutdown, which waits for every client to disconnect), but `docker import`
//!   rejects STOPSIGNAL, so `dumb-init --single-child --rewrite 15:2` is PID 1
//!   and turns `docker stop`'s SIGTERM into SIGINT for the server, which the
//!   entrypoint has exec'd into. LLVM JIT is left out (about 130 MB);
//!   PostgreSQL silently runs without JIT then.
//! * `rabbitmq` behaves like `rabbitmq:3`: `RABBITMQ_DEFAULT_USER`,
//!   `RABBITMQ_DEFAULT_PASS`, `RABBITMQ_DEFAULT_VHOST` and
//!   `RABBITMQ_ERLANG_COOKIE` (read by RabbitMQ itself since 3.9.4),
//!   `loopback_users = none`, logs on stdout, node name `rabbit@localhost`
//!   whatever the container's hostname. The management plugin ships in the
//!   package but is off; enable it with `RABBITMQ_ENABLED_PLUGINS=rabbitmq_management`
//!   (port 15672) or by mounting `/etc/rabbitmq/enabled_plugins`.
//! * `prometheus` and `alertmanager` behave like `prom/prometheus` and
//!   `prom/alertmanager`: same binary paths, config paths, entrypoints, default
//!   commands, `USER nobody`, working directory = storage directory.
//! * `base` has `ca-certificates`, `iproute2` (`ip`, `tc`), `iptables`,
//!   `procps`, and `dumb-init` as PID 1 (so `docker stop` is quick even for
//!   `sleep`, and orphans of `docker exec`'d helpers are reaped);
//!   `CMD ["sleep","infinity"]`, replaced by `command:` to run a mounted binary.
//!
//! `docker import -c` accepts only CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK,
//! LABEL, ONBUILD, USER, VOLUME and WORKDIR (Docker 20.10). No recipe declares
//! a VOLUME: upstream's would leave an anonymous volume behind every
//! container that is removed without `-v`.
//!
//! Every setup script ends with the same slimming step ([`SLIM`]): man pages,
//! info pages, docs (except copyright files) and message translations are
//! removed, and the host's `/etc/resolv.conf` and `/etc/hostname`, which
//! debootstrap copies in, are reset (Docker bind-mounts its own at run time).

/// One image of the debian set.
#[derive(Debug, Clone, Copy)]
pub struct Recipe {
    /// Short name used by templates and `lab images` ("redis", "postgres", "rabbitmq", "prometheus", "alertmanager", "base").
    pub name: &'static str,
    /// Local tag, e.g. "lab-debian/redis:7.0".
    pub tag: &'static str,
    /// Debian packages passed to debootstrap --include (or installed with apt inside the chroot).
    pub packages: &'static [&'static str],
    /// Files written into the rootfs before the setup script: (absolute path, content, unix mode).
    pub files: &'static [(&'static str, &'static str, u32)],
    /// Shell script run with `chroot ROOTFS /bin/sh -ec SCRIPT` after the files are written; "" for none.
    pub setup: &'static str,
    /// Dockerfile instructions given to `docker import -c`, one per entry, e.g. r#"CMD ["redis-server"]"#, "ENV FOO=bar", "EXPOSE 6379/tcp", "USER postgres", "WORKDIR /", r#"ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]"#.
    pub changes: &'static [&'static str],
}

/// The slimming step that ends every setup script, as a string literal so it
/// can be joined to the scripts with `concat!`.
macro_rules! slim {
    () => {
        r#"
# --- slim: docs (copyright files kept), man/info pages, translations ---
find /usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete
find /usr/share/doc -mindepth 1 -depth -type d -empty -delete
rm -rf /usr/share/man/* /usr/share/info/* /usr/share/lintian
find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
rm -rf /var/log/apt/* /var/log/*.log /var/cache/debconf/*-old /var/lib/dpkg/*-old
# apt's binary caches (70 MB) appear when packages come from apt-get in the chroot
rm -f /var/cache/apt/*.bin
# debootstrap copies the host's resolver and hostname; Docker mounts its own.
: > /etc/resolv.conf
echo localhost > /etc/hostname
"#
    };
}

/// The slimming step run at the end of every recipe's setup script.
pub const SLIM: &str = slim!();

/// PATH used by images whose changes set one explicitly.
macro_rules! std_path {
    () => {
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    };
}

// ---------------------------------------------------------------- redis --

const REDIS_ENTRYPOINT: &str = r#"#!/bin/sh
# Entrypoint shaped like the official redis image's docker-entrypoint.sh.
set -e

# `docker run IMAGE --appendonly yes` or `docker run IMAGE /my.conf`
case "${1:-}" in
    -*|*.conf) set -- redis-server "$@" ;;
esac

if [ "${1:-}" = redis-server ]; then
    # The official image is built with protected mode off. Debian's redis keeps
    # it on, which refuses clients from other addresses when no password is
    # set, so turn it off unless the command line says otherwise. It goes
    # right after the config file (if any) so later options still win.
    case " $* " in
        *" --protected-mode "*) ;;
        *)
            shift
            if [ -n "${1:-}" ] && [ "${1#-}" = "$1" ]; then
                conf=$1
                shift
                set -- redis-server "$conf" --protected-mode no "$@"
            else
                set -- redis-server --protected-mode no "$@"
            fi
            ;;
    esac
    if [ "$(id -u)" = 0 ]; then
        find . \! -user redis -exec chown redis '{}' +
        exec setpriv --reuid=redis --regid=redis --init-groups "$@"
    fi
fi

exec "$@"
"#;

const REDIS: Recipe = Recipe {
    name: "redis",
    tag: "lab-debian/redis:7.0",
    packages: &["redis-server"],
    files: &[("/usr/local/bin/docker-entrypoint.sh", REDIS_ENTRYPOINT, 0o755)],
    setup: concat!(
        r#"
test -x /usr/bin/redis-server
mkdir -p /data
chown redis:redis /data
"#,
        slim!()
    ),
    changes: &[concat!("ENV PATH=", std_path!()), "WORKDIR /data", "EXPOSE 6379/tcp", r#"ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]"#, r#"CMD ["redis-server"]"#],
};

// ------------------------------------------------------------- postgres --

const POSTGRES_ENTRYPOINT: &str = r#"#!/bin/bash
# Entrypoint shaped like the official postgres image's docker-entrypoint.sh.
#
#   POSTGRES_USER              superuser name (default postgres)
#   POSTGRES_PASSWORD          its password; required unless
#                              POSTGRES_HOST_AUTH_METHOD=trust
#   POSTGRES_DB                database created on first start (default $POSTGRES_USER)
#   POSTGRES_INITDB_ARGS       extra initdb arguments
#   POSTGRES_HOST_AUTH_METHOD  pg_hba method for remote hosts (default scram-sha-256)
#   /docker-entrypoint-initdb.d/*.sh, *.sql, *.sql.gz   run once, on first start
set -Eeuo pipefail

if [ "${1:0:1}" = '-' ]; then
    set -- postgres "$@"
fi

if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
    chmod 00700 "$PGDATA" || :
    chown postgres:postgres /var/run/postgresql
    chmod 03775 /var/run/postgresql || :
    # exec, so that postgres is dumb-init's child and gets the stop signal
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

psql_run() {
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc "$@"
}

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_USER:=postgres}"
    : "${POSTGRES_DB:=$POSTGRES_USER}"
    : "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
    : "${POSTGRES_PASSWORD:=}"
    : "${POSTGRES_INITDB_ARGS:=}"
    export POSTGRES_USER POSTGRES_DB POSTGRES_PASSWORD
    if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
        cat >&2 <<'EOM'
Error: Database is uninitialized and superuser password is not specified.
       You must specify POSTGRES_PASSWORD to a non-empty value for the
       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".
       Or set POSTGRES_HOST_AUTH_METHOD=trust to allow all connections
       without a password (not recommended).
EOM
        exit 1
    fi

    pwargs=()
    if [ -n "$POSTGRES_PASSWORD" ]; then
        pwfile=$(mktemp)
        printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
        pwargs=(--pwfile="$pwfile")
    fi
    eval 'initdb --username="$POSTGRES_USER" "${pwargs[@]}" '"$POSTGRES_INITDB_ARGS"
    [ -n "${pwfile:-}" ] && rm -f "$pwfile"

    {
        echo
        if [ "$POSTGRES_HOST_AUTH_METHOD" = trust ]; then
            echo '# warning trust is enabled for all connections'
        fi
        echo "host all all all $POSTGRES_HOST_AUTH_METHOD"
    } >> "$PGDATA/pg_hba.conf"

    # temporary server, unix socket only
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start

    # psql expands :'db' only in input it reads, not in -c
    exists=$(psql_run --dbname postgres --set db="$POSTGRES_DB" --tuples-only --no-align <<'EOSQL'
SELECT 1 FROM pg_database WHERE datname = :'db' ;
EOSQL
)
    if [ -z "$exists" ]; then
        psql_run --dbname postgres --set db="$POSTGRES_DB" <<'EOSQL'
CREATE DATABASE :"db" ;
EOSQL
    fi

    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh)
                if [ -x "$f" ]; then echo "$0: running $f"; "$f"
                else echo "$0: sourcing $f"; . "$f"; fi ;;
            *.sql) echo "$0: running $f"; psql_run --dbname "$POSTGRES_DB" -f "$f" ;;
            *.sql.gz) echo "$0: running $f"; gzip -dc "$f" | psql_run --dbname "$POSTGRES_DB" ;;
            *) [ -e "$f" ] && echo "$0: ignoring $f" ;;
        esac
    done

    pg_ctl -D "$PGDATA" -m fast -w stop
    echo
    echo 'PostgreSQL init process complete; ready for start up.'
    echo
fi

exec "$@"
"#;

const POSTGRES: Recipe = Recipe {
    name: "postgres",
    tag: "lab-debian/postgres:15",
    packages: &["postgresql-15", "dumb-init"],
    files: &[("/usr/local/bin/docker-entrypoint.sh", POSTGRES_ENTRYPOINT, 0o755)],
    setup: concat!(
        r#"
test -x /usr/lib/postgresql/15/bin/postgres
# Debian's postinst created a cluster "main" under /var/lib/postgresql/15 and
# /etc/postgresql/15; this image keeps its data in $PGDATA like upstream.
rm -rf /var/lib/postgresql/15 /etc/postgresql/15
# listen on all addresses by default, as upstream does
sed -ri "s/^#?listen_addresses\s*=\s*\S+/listen_addresses = '*'/" /usr/share/postgresql/15/postgresql.conf.sample
grep -q "^listen_addresses = '\*'" /usr/share/postgresql/15/postgresql.conf.sample
# upstream's default locale
localedef -i en_US -c -f UTF-8 -A /usr/share/locale/locale.alias en_US.UTF-8
rm -rf /usr/share/i18n
# no LLVM JIT (only llvmjit.so uses libLLVM/libz3): about 130 MB
rm -rf /usr/lib/postgresql/15/lib/llvmjit.so /usr/lib/postgresql/15/lib/llvmjit_types.bc /usr/lib/postgresql/15/lib/bitcode
rm -f /usr/lib/*/libLLVM-14.so* /usr/lib/*/libz3.so*
mkdir -p /var/lib/postgresql/data /var/run/postgresql /docker-entrypoint-initdb.d
chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
chmod 00700 /var/lib/postgresql/data
chmod 03775 /var/run/postgresql
"#,
        slim!()
    ),
    changes: &[
        concat!("ENV PATH=/usr/lib/postgresql/15/bin:", std_path!()),
        "ENV PGDATA=/var/lib/postgresql/data",
        "ENV LANG=en_US.utf8",
        "EXPOSE 5432/tcp",
        // stands in for upstream's STOPSIGNAL SIGINT, which import rejects
        r#"ENTRYPOINT ["/usr/bin/dumb-init","--single-child","--rewrite","15:2","--","/usr/local/bin/docker-entrypoint.sh"]"#,
        r#"CMD ["postgres"]"#,
    ],
};

// ------------------------------------------------------------- rabbitmq --

const RABBITMQ_DEFAULTS: &str = r#"# Defaults shaped like the official image's conf.d/10-defaults.conf.
# Users (guest/guest unless RABBITMQ_DEFAULT_USER / RABBITMQ_DEFAULT_PASS are
# set) may log in from any address, not only from inside the container.
loopback_users = none
listeners.tcp.default = 5672
"#;

const RABBITMQ_ENTRYPOINT: &str = r#"#!/bin/sh
# Entrypoint shaped like the official rabbitmq image's docker-entrypoint.sh.
# RABBITMQ_DEFAULT_USER, RABBITMQ_DEFAULT_PASS, RABBITMQ_DEFAULT_VHOST,
# RABBITMQ_ERLANG_COOKIE and RABBITMQ_ENABLED_PLUGINS are read by RabbitMQ itself.
set -e

case "${1:-}" in
    -*) set -- rabbitmq-server "$@" ;;
esac

if [ "${1:-}" = rabbitmq-server ] && [ "$(id -u)" = 0 ]; then
    mkdir -p /var/lib/rabbitmq /var/log/rabbitmq
    find /var/lib/rabbitmq /var/log/rabbitmq \! -user rabbitmq -exec chown rabbitmq:rabbitmq '{}' +
    # rabbitmq-server traps SIGTERM and stops the node cleanly
    exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups "$0" "$@"
fi

exec "$@"
"#;

const RABBITMQ: Recipe = Recipe {
    name: "rabbitmq",
    tag: "lab-debian/rabbitmq:3.10",
    packages: &["rabbitmq-server"],
    files: &[("/etc/rabbitmq/conf.d/10-defaults.conf", RABBITMQ_DEFAULTS, 0o644), ("/usr/local/bin/docker-entrypoint.sh", RABBITMQ_ENTRYPOINT, 0o755)],
    setup: concat!(
        r#"
test -x /usr/lib/rabbitmq/bin/rabbitmq-server
mkdir -p /var/lib/rabbitmq /var/log/rabbitmq /etc/rabbitmq/conf.d
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /var/log/rabbitmq /etc/rabbitmq
rm -f /var/lib/rabbitmq/.erlang.cookie
"#,
        slim!()
    ),
    changes: &[
        // /usr/lib/rabbitmq/bin first: Debian's /usr/sbin wrappers would send
        // the server's output to a log file and go through su.
        concat!("ENV PATH=/usr/lib/rabbitmq/bin:", std_path!()),
        "ENV HOME=/var/lib/rabbitmq",
        "ENV RABBITMQ_NODENAME=rabbit@localhost",
        "ENV RABBITMQ_LOGS=-",
        "EXPOSE 5672/tcp",
        "EXPOSE 15672/tcp",
        r#"ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]"#,
        r#"CMD ["rabbitmq-server"]"#,
    ],
};

// ----------------------------------------------------------- prometheus --

const PROMETHEUS_CONFIG: &str = r#"# Minimal default, like prom/prometheus: scrape Prometheus itself.
global:
  scrape_interval: 15s
  evaluation_interval: 15s

scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["localhost:9090"]
"#;

const PROMETHEUS: Recipe = Recipe {
    name: "prometheus",
    tag: "lab-debian/prometheus:2.42",
    packages: &["prometheus"],
    files: &[("/etc/prometheus/prometheus.yml", PROMETHEUS_CONFIG, 0o644)],
    setup: concat!(
        r#"
# /bin is a symlink to usr/bin on bookworm, so this is usually already there
[ -e /bin/prometheus ] || ln -s /usr/bin/prometheus /bin/prometheus
[ -e /bin/promtool ] || ln -s /usr/bin/promtool /bin/promtool
test -x /bin/prometheus
# 210 MB of time zone data used only by the classic web UI's date picker
rm -rf /usr/share/javascript/moment-timezone/data
mkdir -p /prometheus
chown nobody:nogroup /prometheus
"#,
        slim!()
    ),
    changes: &[
        "USER nobody",
        "WORKDIR /prometheus",
        "EXPOSE 9090/tcp",
        r#"ENTRYPOINT ["/bin/prometheus"]"#,
        r#"CMD ["--config.file=/etc/prometheus/prometheus.yml","--storage.tsdb.path=/prometheus"]"#,
    ],
};

// --------------------------------------------------------- alertmanager --

const ALERTMANAGER_CONFIG: &str = r#"# Minimal default: every alert goes to a receiver that does nothing.
route:
  receiver: "null"

receivers:
  - name: "null"
"#;

const ALERTMANAGER: Recipe = Recipe {
    name: "alertmanager",
    tag: "lab-debian/alertmanager:0.25",
    packages: &["prometheus-alertmanager"],
    files: &[("/etc/alertmanager/alertmanager.yml", ALERTMANAGER_CONFIG, 0o644)],
    setup: concat!(
        r#"
[ -e /usr/bin/alertmanager ] || ln -s prometheus-alertmanager /usr/bin/alertmanager
[ -e /bin/alertmanager ] || ln -s /usr/bin/prometheus-alertmanager /bin/alertmanager
test -x /bin/alertmanager
test -x /bin/amtool
mkdir -p /alertmanager
chown nobody:nogroup /alertmanager
"#,
        slim!()
    ),
    changes: &[
        "USER nobody",
        "WORKDIR /alertmanager",
        "EXPOSE 9093/tcp",
        r#"ENTRYPOINT ["/bin/alertmanager"]"#,
        r#"CMD ["--config.file=/etc/alertmanager/alertmanager.yml","--storage.path=/alertmanager"]"#,
    ],
};

// ----------------------------------------------------------------- base --

const BASE: Recipe = Recipe {
    name: "base",
    tag: "lab-debian/base:bookworm",
    packages: &["ca-certificates", "iproute2", "iptables", "procps", "dumb-init"],
    files: &[],
    setup: concat!(
        r#"
test -x /usr/bin/dumb-init
command -v iptables
command -v tc
mkdir -p /tmp
chmod 1777 /tmp
"#,
        slim!()
    ),
    changes: &[concat!("ENV PATH=", std_path!()), "WORKDIR /", r#"ENTRYPOINT ["/usr/bin/dumb-init","--"]"#, r#"CMD ["sleep","infinity"]"#],
};

/// All recipes of the debian set, in the order they are usually baked.
pub const RECIPES: &[Recipe] = &[REDIS, POSTGRES, RABBITMQ, PROMETHEUS, ALERTMANAGER, BASE];

/// The recipe called `name`, if there is one.
pub fn recipe(name: &str) -> Option<&'static Recipe> {
    RECIPES.iter().find(|r| r.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// What `docker import -c` accepts (Docker 20.10); STOPSIGNAL is not among them.
    const KEYWORDS: &[&str] = &["CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "ONBUILD", "USER", "VOLUME", "WORKDIR"];

    #[test]
    fn every_name_present_once() {
        for name in ["redis", "postgres", "rabbitmq", "prometheus", "alertmanager", "base"] {
            assert!(recipe(name).is_some(), "missing recipe {name}");
        }
        assert_eq!(RECIPES.len(), 6);
        let names: HashSet<_> = RECIPES.iter().map(|r| r.name).collect();
        assert_eq!(names.len(), RECIPES.len(), "duplicate names");
        assert!(recipe("nope").is_none());
    }

    #[test]
    fn tags_unique_and_local() {
        let tags: HashSet<_> = RECIPES.iter().map(|r| r.tag).collect();
        assert_eq!(tags.len(), RECIPES.len(), "duplicate tags");
        for r in RECIPES {
            let (repo, version) = r.tag.split_once(':').expect("tag has a version");
            assert_eq!(repo, format!("lab-debian/{}", r.name));
            assert!(!version.is_empty());
            assert!(r.tag.chars().all(|c| !c.is_whitespace() && !c.is_uppercase()));
        }
    }

    #[test]
    fn packages_are_plain_names() {
        for r in RECIPES {
            assert!(!r.packages.is_empty(), "{}: no packages", r.name);
            for p in r.packages {
                assert!(!p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c)), "{}: odd package name {p:?}", r.name);
            }
        }
    }

    #[test]
    fn file_paths_absolute_and_modes_sane() {
        for r in RECIPES {
            let mut seen = HashSet::new();
            for (path, content, mode) in r.files {
                assert!(path.starts_with('/'), "{}: {path} is not absolute", r.name);
                assert!(!path.ends_with('/') && !path.contains(".."), "{}: {path}", r.name);
                assert!(seen.insert(*path), "{}: {path} written twice", r.name);
                assert!(*mode <= 0o7777, "{}: {path} mode {mode:o}", r.name);
                if mode & 0o111 != 0 {
                    assert!(content.starts_with("#!/"), "{}: {path} lacks a shebang", r.name);
                }
                assert!(!content.contains('\r'), "{}: {path} has CR", r.name);
            }
        }
    }

    #[test]
    fn changes_start_with_known_keyword() {
        for r in RECIPES {
            for change in r.changes {
                let keyword = change.split_whitespace().next().unwrap_or("");
                assert!(KEYWORDS.contains(&keyword), "{}: unknown instruction {change:?}", r.name);
                assert_eq!(change.trim(), *change, "{}: stray whitespace in {change:?}", r.name);
                if matches!(keyword, "CMD" | "ENTRYPOINT") {
                    let arg = change[keyword.len()..].trim();
                    assert!(arg.starts_with("[\"") && arg.ends_with("\"]"), "{}: {change} not exec form", r.name);
                }
            }
            assert!(r.changes.iter().any(|c| c.starts_with("CMD ") || c.starts_with("ENTRYPOINT ")), "{}: nothing to run", r.name);
        }
    }

    #[test]
    fn entrypoints_are_shipped() {
        for r in RECIPES {
            for change in r.changes.iter().filter(|c| c.starts_with("ENTRYPOINT ")) {
                let first = change["ENTRYPOINT ".len()..].trim_start_matches("[\"").split('"').next().unwrap();
                let shipped = r.files.iter().any(|(p, _, _)| *p == first);
                let from_package = first.starts_with("/bin/") || first.starts_with("/usr/bin/");
                assert!(shipped || from_package, "{}: entrypoint {first} comes from nowhere", r.name);
            }
        }
    }

    #[test]
    fn setup_scripts_slim_and_avoid_proc() {
        for r in RECIPES {
            assert!(r.setup.ends_with(SLIM), "{}: setup does not end with SLIM", r.name);
            assert!(!r.setup.contains("/proc"), "{}: setup needs /proc", r.name);
            assert!(!r.setup.contains('\r'));
        }
    }

    #[test]
    fn upstream_shapes() {
        let p = recipe("prometheus").unwrap();
        assert!(p.changes.contains(&r#"ENTRYPOINT ["/bin/prometheus"]"#));
        assert!(p.files.iter().any(|f| f.0 == "/etc/prometheus/prometheus.yml"));
        let a = recipe("alertmanager").unwrap();
        assert!(a.changes.contains(&r#"ENTRYPOINT ["/bin/alertmanager"]"#));
        assert!(a.files.iter().any(|f| f.0 == "/etc/alertmanager/alertmanager.yml"));
        let pg = recipe("postgres").unwrap();
        assert!(pg.changes.contains(&"ENV PGDATA=/var/lib/postgresql/data"));
        assert!(pg.changes.iter().any(|c| c.contains(r#""--rewrite","15:2""#)));
        assert!(pg.packages.contains(&"dumb-init"));
        let rb = recipe("rabbitmq").unwrap();
        assert!(rb.changes.contains(&"ENV RABBITMQ_NODENAME=rabbit@localhost"));
        assert!(recipe("redis").unwrap().changes.contains(&"EXPOSE 6379/tcp"));
    }
}
