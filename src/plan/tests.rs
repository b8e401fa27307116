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
    Solution::Binary { path: PathBuf::from("/cache/bin/lab-url-shortener/app"), digest: "abcd".into(), root: None }
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
    o.ports.insert("lab-url-shortener--alice-redis-1".into(), 51000);
    let p = plan(&lab(), &o, counter()).unwrap();
    assert_eq!(p.instance, "lab-url-shortener--alice");
    assert_eq!(p.containers[0].name, "lab-url-shortener--alice-redis-1");
    assert_eq!(p.containers[0].port.host, 51000);
    assert_eq!(p.labels[labels::STUDENT], "alice");
}

#[test]
fn the_digest_changes_with_the_binary_and_env() {
    let a = plan(&lab(), &opts(binary(), None), counter()).unwrap();
    let b = plan(&lab(), &opts(binary(), None), counter()).unwrap();
    assert_eq!(a.containers[1].digest(""), b.containers[1].digest(""));
    let mut o = opts(Solution::Binary { path: PathBuf::from("/cache/bin/lab-url-shortener/app"), digest: "other".into(), root: None }, None);
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
    assert_eq!(instance_name("raft", Some("bob")), "lab-raft--bob");
    // Student `redirect` of raft and the lab `raft-redirect` are two instances.
    assert_ne!(instance_name("raft", Some("redirect")), instance_name("raft-redirect", None));
    assert!(valid_student("bob-2"));
    assert!(!valid_student("a--b") && !valid_student("-a") && !valid_student("a-"), "a double dash would make names ambiguous");
    assert!(!valid_student("Bob"));
    assert!(!valid_student("a b"));
}

#[test]
fn raft_peers_reach_each_other_through_the_fault_proxy() {
    let raft = Catalogue::new(vec![]).find("raft").unwrap();
    let mut o = opts(binary(), None);
    o.lab_exe = Some(PathBuf::from("/usr/local/bin/lab"));
    let p = plan(&raft, &o, counter()).unwrap();
    assert!(p.peer_proxy);
    let proxy = p.containers.iter().find(|c| c.service == "proxy").expect("a proxy container");
    let cmd = proxy.command.as_ref().unwrap().join(" ");
    for n in 1..=3 {
        assert!(cmd.contains(&format!("--link app-{n}=0.0.0.0:{}=app-{n}:7000", PEER_PROXY_BASE + n)), "{cmd}");
    }
    let app2 = p.containers.iter().find(|c| c.name == "lab-raft-app-2").unwrap();
    assert_eq!(app2.env["RAFT_ADVERTISE"], "proxy:17002");
    assert_eq!(app2.env["PEERS"], "n1=proxy:17001,n2=proxy:17002,n3=proxy:17003");
    // Without lab's executable to run the proxy, the nodes talk directly.
    let p = plan(&raft, &opts(binary(), None), counter()).unwrap();
    assert!(!p.peer_proxy);
    assert_eq!(p.containers.iter().find(|c| c.name == "lab-raft-app-2").unwrap().env["PEERS"], "n1=app-1:7000,n2=app-2:7000,n3=app-3:7000");
}

fn monitoring() -> Lab {
    Catalogue::new(vec![]).find("monitoring").unwrap()
}

fn yaml_env(c: &ContainerSpec, var: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&c.env[var]).unwrap_or_else(|e| panic!("{var} of {} is not YAML ({e}):\n{}", c.name, c.env[var]))
}

#[test]
fn prometheus_scrapes_the_replicas_and_alertmanager_delivers_to_labs_webhook() {
    let mut o = opts(binary(), None);
    o.lab_exe = Some(PathBuf::from("/opt/lab/bin/lab"));
    let p = plan(&monitoring(), &o, counter()).unwrap();
    let prom = p.containers.iter().find(|c| c.service == "prometheus").unwrap();
    let cfg = yaml_env(prom, "LAB_PROMETHEUS_CONFIG");
    let job = &cfg["scrape_configs"][0];
    assert_eq!(job["job_name"], "app");
    assert_eq!(job["static_configs"][0]["targets"][0], "app-1:8080");
    assert_eq!(cfg["global"]["scrape_interval"], "500ms");
    assert_eq!(cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0], "alertmanager:9093");
    let rules = yaml_env(prom, "LAB_PROMETHEUS_RULES");
    assert_eq!(rules["groups"][0]["rules"][0]["alert"], "HighErrorRate");
    assert!(prom.extra_hosts.is_empty());
    assert!(prom.entrypoint.as_ref().unwrap().join(" ").contains("/bin/sh"));

    let am = p.containers.iter().find(|c| c.service == "alertmanager").unwrap();
    let cfg = yaml_env(am, "LAB_ALERTMANAGER_CONFIG");
    assert_eq!(cfg["receivers"][0]["webhook_configs"][0]["url"], "http://webhook:9095/notify");

    let sink = p.containers.iter().find(|c| c.service == WEBHOOK_SERVICE).expect("the webhook sink runs");
    assert_eq!(sink.role, Role::Dependency);
    assert_eq!(sink.aliases, ["webhook"]);
    assert_eq!(sink.mounts[0].host, PathBuf::from("/opt/lab/bin"));
    assert_eq!(sink.command.as_ref().unwrap()[..3], ["/lab/exe/lab", "proxy", "webhook"]);
    // lab under another name (a versioned copy, say) runs under that name.
    o.lab_exe = Some(PathBuf::from("/opt/lab/bin/lab-0.1"));
    let p = plan(&monitoring(), &o, counter()).unwrap();
    let sink = p.containers.iter().find(|c| c.service == WEBHOOK_SERVICE).unwrap();
    assert_eq!(sink.command.as_ref().unwrap()[0], "/lab/exe/lab-0.1");
    assert_eq!(sink.port.container, crate::probe::webhook::PORT);
}

#[test]
fn prometheus_reaches_a_service_on_the_host_through_the_gateway() {
    let mut o = opts(Solution::Target("http://127.0.0.1:18091/".into()), None);
    o.lab_exe = Some(PathBuf::from("/opt/lab/bin/lab"));
    let p = plan(&monitoring(), &o, counter()).unwrap();
    let prom = p.containers.iter().find(|c| c.service == "prometheus").unwrap();
    let cfg = yaml_env(prom, "LAB_PROMETHEUS_CONFIG");
    assert_eq!(cfg["scrape_configs"][0]["static_configs"][0]["targets"][0], "host.docker.internal:18091");
    assert_eq!(prom.extra_hosts, ["host.docker.internal:host-gateway"]);
    // A service on another machine is scraped where it is.
    let p = plan(&monitoring(), &opts(Solution::Target("http://10.1.2.3:80".into()), None), counter()).unwrap();
    let prom = p.containers.iter().find(|c| c.service == "prometheus").unwrap();
    assert_eq!(yaml_env(prom, "LAB_PROMETHEUS_CONFIG")["scrape_configs"][0]["static_configs"][0]["targets"][0], "10.1.2.3:80");
    assert!(p.containers.iter().all(|c| c.service != WEBHOOK_SERVICE), "no sink without lab's executable to run it");
}

#[test]
fn labs_without_alertmanager_keep_their_digests() {
    // The new fields are left out of the spec's JSON when empty, so running instances are not recreated.
    let p = plan(&lab(), &opts(binary(), None), counter()).unwrap();
    let json = serde_json::to_string(&p.containers[0]).unwrap();
    assert!(!json.contains("extra_hosts"), "{json}");
    assert!(p.containers.iter().all(|c| c.service != WEBHOOK_SERVICE));
}

#[test]
fn a_command_line_lab_plans_no_container_and_hands_over_its_program() {
    let task = Catalogue::new(vec![]).find("task-cli").unwrap();
    let path = PathBuf::from("/cache/bin/lab-task-cli/task");
    let mut o = opts(Solution::Binary { path: path.clone(), digest: "abcd".into(), root: None }, None);
    o.extra_env.insert("TASKCLI_BUG".into(), "precedence".into());
    let p = plan(&task, &o, || Err("a command-line lab needs no port".into())).unwrap();
    assert!(p.containers.is_empty(), "{:?}", p.containers);
    assert!(p.is_cli());
    assert_eq!(p.program.as_deref(), Some(path.as_path()));
    assert_eq!(p.service_url(1), None);
    // --env reaches the program's runs through the service's environment.
    assert_eq!(p.service_env[0]["TASKCLI_BUG"], "precedence");
    // A service in containers hands over no program: its containers run it.
    assert_eq!(plan(&lab(), &opts(binary(), None), counter()).unwrap().program, None);
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

#[test]
fn resources_in_lab_yaml_set_the_limits_and_the_rest_keep_their_role_s_defaults() {
    let src = lab().source.read_file("lab.yaml").expect("url-shortener's lab.yaml");
    let with = src.replacen("service:\n", "service:\n  resources: { memory: 256MiB, cpus: 0.5 }\n", 1).replacen("    proxy: true\n", "    proxy: true\n    resources: { pids: 64 }\n", 1);
    let def = crate::lab::parse("lab.yaml", &with, None).unwrap_or_else(|e| panic!("{e:?}"));
    let l = Lab { def, source: lab().source };
    let p = plan(&l, &opts(binary(), None), counter()).unwrap();
    let app = p.containers.iter().find(|c| c.service == "app").unwrap();
    assert_eq!(app.limits, Limits { memory: 256 << 20, cpus: 0.5, pids: 1024 });
    let redis = p.containers.iter().find(|c| c.service == "redis").unwrap();
    assert_eq!(redis.limits, Limits { memory: 1 << 30, cpus: 1.0, pids: 64 });
    // An amount that is not one is refused at its line, saying how to write it.
    for (bad, says) in [("memory: lots", "is not an amount"), ("memory: 512", "below 16 MiB"), ("cpus: 0", "out of range"), ("pids: 2", "too few")] {
        let text = src.replacen("service:\n", &format!("service:\n  resources: {{ {bad} }}\n"), 1);
        let line = text.lines().position(|l| l.contains(bad)).unwrap() + 1;
        let err = crate::lab::parse("lab.yaml", &text, None).unwrap_err();
        assert!(err.errors[0].message.contains(says) && err.errors[0].line == line, "{bad}: {:?}", err.errors[0]);
    }
}

#[test]
fn a_store_as_it_ships_gets_its_arguments_its_folder_its_data_folder_and_tcp_readiness() {
    let raft = Catalogue::new(vec![]).find("raft").unwrap();
    let src = raft.source.read_file("lab.yaml").unwrap();
    let with = src
        .replacen("  peers: { port: 7000, proxy: true }\n", "  peers: { port: 7000, proxy: true }\n  command: [\"--id\", \"{{ env.NODE_ID }}\", \"--data\", \"{{ self.data_dir }}/d\", \"--cluster\", \"{{ nodes | map(attribute='peer_addr') | join(sep=',') }}\"]\n  program: bin/store\n", 1)
        .replacen("  ready:\n    path: /healthz\n", "  ready:\n    tcp: true\n", 1)
        .replacen("    id_env: NODE_ID\n", "    id: \"node-{{ self.node }}\"\n", 1);
    let def = crate::lab::parse("lab.yaml", &with, None).unwrap_or_else(|e| panic!("{e:?}"));
    let l = Lab { def, source: raft.source.clone() };
    let root = PathBuf::from("/cache/bin/lab-raft");
    let sol = Solution::Binary { path: root.join("bin/store"), digest: "f1".into(), root: Some(root.clone()) };
    let p = plan(&l, &opts(sol, None), counter()).unwrap();
    let app2 = p.containers.iter().find(|c| c.name == "lab-raft-app-2").unwrap();
    assert_eq!(app2.command.as_ref().unwrap(), &["/lab/bin/bin/store", "--id", "n2", "--data", "/tmp/d", "--cluster", "app-1:7000,app-2:7000,app-3:7000"].map(String::from).to_vec());
    assert_eq!(app2.mounts[0].host, root, "the whole folder is mounted, not the executable's own");
    assert_eq!(app2.labels[PROGRAM_LABEL], "bin/store");
    assert_eq!(app2.workdir.as_deref(), Some(DATA_DIR));
    assert!(matches!(app2.ready, Readiness::Tcp));
    assert_eq!(app2.id.as_deref(), Some("node-2"), "the leader probe's id, rendered per node");
    // An image starts where it says: lab's data folder is for the programs lab runs.
    let img = Solution::Image { image: "me/store:1".into(), entrypoint: vec!["/store".into()], command: vec![] };
    let p = plan(&l, &opts(img, None), counter()).unwrap();
    let app1 = p.containers.iter().find(|c| c.name == "lab-raft-app-1").unwrap();
    assert_eq!(app1.workdir, None);
    assert_eq!(app1.command.as_ref().unwrap()[..2], ["--id".to_string(), "n1".to_string()]);
    // An argument that does not render is a plan error naming it.
    let bad = with.replacen("\"{{ env.NODE_ID }}\"", "\"{{ nope }}\"", 1);
    let def = crate::lab::parse("lab.yaml", &bad, None);
    assert!(def.is_err(), "validation catches an undefined variable in an argument");
}

#[test]
fn a_dependency_that_runs_labs_program_is_made_from_the_base_image_with_lab_mounted() {
    let cb = Catalogue::new(vec![]).find("circuit-breaker").unwrap();
    let mut o = opts(binary(), None);
    o.lab_exe = Some(PathBuf::from("/opt/lab/bin/lab"));
    let p = plan(&cb, &o, counter()).unwrap();
    let up = p.containers.iter().find(|c| c.service == "upstream").expect("the upstream runs");
    assert_eq!(up.image, o.images.image("base"));
    assert_eq!(up.mounts[0].host, PathBuf::from("/opt/lab/bin"));
    assert_eq!(up.command.as_ref().unwrap()[..3], ["/lab/exe/lab", "proxy", "upstream"]);
    assert_eq!(up.port.container, crate::probe::upstream::PORT);
    let app = p.replicas().next().unwrap();
    assert_eq!(p.service_env[0]["UPSTREAM_URL"], "http://upstream:9096");
    assert_eq!(app.role, Role::Service);
    // Without lab's executable there is nothing to run: said, not guessed.
    let err = plan(&cb, &opts(binary(), None), counter()).unwrap_err();
    assert!(err.to_string().contains("dependency `upstream` runs lab's own program"), "{err}");
}
