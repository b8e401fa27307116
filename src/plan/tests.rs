use super::*;
use crate::lab::Catalogue;

fn lab() -> Lab {
    Catalogue::new(vec![]).find("url-shortener").unwrap()
}

fn counter() -> impl FnMut() -> Result<u16, String> {
    let mut n = 40000;
    move || {
        n += 1;
        Ok(n)
    }
}

fn opts(solution: Solution, student: Option<&str>) -> PlanOptions {
    PlanOptions {
        student: student.map(str::to_string),
        images: ImageSet::Debian,
        solution,
        ports: HashMap::new(),
        extra_env: BTreeMap::new(),
        ready_timeout: None,
        lab_exe: None,
        secret: String::new(),
    }
}

fn binary() -> Solution {
    Solution::Binary { path: PathBuf::from("/cache/bin/lab-url-shortener/app"), digest: "abcd".into() }
}

#[test]
fn names_labels_ports_and_env_follow_the_conventions() {
    let p = plan(&lab(), &opts(binary(), None), counter()).unwrap();
    assert_eq!(p.instance, "lab-url-shortener");
    assert_eq!(p.network, "lab-url-shortener");
    let names: Vec<&str> = p.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["lab-url-shortener-redis-1", "lab-url-shortener-app-1"]);
    let app = &p.containers[1];
    assert_eq!(app.labels[labels::INSTANCE], "lab-url-shortener");
    assert_eq!(app.labels[labels::ROLE], "service");
    assert_eq!(app.env["REDIS_ADDR"], "redis:6379");
    assert_eq!(app.env["BASE_URL"], format!("http://127.0.0.1:{}", app.port.host));
    assert_eq!(app.command.as_deref(), Some(&["/lab/bin/app".to_string()][..]));
    assert_eq!(app.mounts[0].host, PathBuf::from("/cache/bin/lab-url-shortener"));
    assert!(app.mounts[0].read_only);
    assert_eq!(app.image, ImageSet::Debian.image("base"));
    assert_eq!(p.service_url(1).unwrap(), format!("http://127.0.0.1:{}", app.port.host));
    let redis = &p.containers[0];
    assert_eq!(redis.port.container, 6379);
    assert_ne!(redis.port.host, app.port.host);
    assert_eq!(redis.aliases, ["redis"]);
}

#[test]
fn a_target_gets_loopback_addresses_and_no_service_container() {
    let p = plan(&lab(), &opts(Solution::Target("http://127.0.0.1:9999/".into()), None), counter()).unwrap();
    assert_eq!(p.containers.len(), 1);
    let redis_port = p.containers[0].port.host;
    assert_eq!(p.service_env[0]["REDIS_ADDR"], format!("127.0.0.1:{redis_port}"));
    assert_eq!(p.service_env[0]["BASE_URL"], "http://127.0.0.1:9999");
    assert_eq!(p.service_url(1).unwrap(), "http://127.0.0.1:9999");
    assert_eq!(p.labels[labels::TARGET], "http://127.0.0.1:9999/");
}

#[test]
fn students_get_their_own_names_and_known_ports_are_kept() {
    let mut o = opts(binary(), Some("alice"));
    o.ports.insert("lab-url-shortener-alice-redis-1".into(), 51000);
    let p = plan(&lab(), &o, counter()).unwrap();
    assert_eq!(p.instance, "lab-url-shortener-alice");
    assert_eq!(p.containers[0].name, "lab-url-shortener-alice-redis-1");
    assert_eq!(p.containers[0].port.host, 51000);
    assert_eq!(p.labels[labels::STUDENT], "alice");
}

#[test]
fn the_digest_changes_with_the_binary_and_env() {
    let a = plan(&lab(), &opts(binary(), None), counter()).unwrap();
    let b = plan(&lab(), &opts(binary(), None), counter()).unwrap();
    assert_eq!(a.containers[1].digest(""), b.containers[1].digest(""));
    let mut o = opts(Solution::Binary { path: PathBuf::from("/cache/bin/lab-url-shortener/app"), digest: "other".into() }, None);
    let c = plan(&lab(), &o, counter()).unwrap();
    assert_ne!(a.containers[1].digest(""), c.containers[1].digest(""));
    o.extra_env.insert("SHORTENER_BUG".into(), "memory".into());
    let d = plan(&lab(), &o, counter()).unwrap();
    assert_eq!(d.containers[1].env["SHORTENER_BUG"], "memory");
    assert_ne!(c.containers[1].digest(""), d.containers[1].digest(""));
}

#[test]
fn no_free_port_is_a_plan_error() {
    let err = plan(&lab(), &opts(binary(), None), || Err("exhausted".to_string())).unwrap_err();
    assert!(matches!(err, PlanError::NoPort(_)));
}

#[test]
fn instance_names() {
    assert_eq!(instance_name("raft", None), "lab-raft");
    assert_eq!(instance_name("raft", Some("bob")), "lab-raft-bob");
    assert!(valid_student("bob-2"));
    assert!(!valid_student("Bob"));
    assert!(!valid_student("a b"));
}

#[test]
fn the_secret_reaches_the_service_env_and_grpc_readiness_is_planned() {
    let auth = Catalogue::new(vec![]).find("grpc-auth").unwrap();
    let mut o = opts(binary(), None);
    o.secret = "ab".repeat(32);
    let p = plan(&auth, &o, counter()).unwrap();
    let app = p.replicas().next().unwrap();
    assert_eq!(app.env["JWT_SECRET"], "ab".repeat(32));
    assert_eq!(p.secret, "ab".repeat(32));
    assert!(matches!(app.ready, Readiness::Grpc), "{:?}", app.ready);
    // A fresh secret each time, 256 bits in hex.
    let (a, b) = (new_secret(), new_secret());
    assert_eq!(a.len(), 64);
    assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a, b);
}
