use super::*;

const GOOD: &str = r#"name: demo
title: A demo
dependencies:
  cache:
    template: redis
service:
  port: 8080
  env:
    REDIS_ADDR: "{{ deps.cache.addr }}"
  ready: { path: /healthz }
stages:
  - stage: basics
    checks:
      - name: up
        expect: it answers
        steps:
          - request: { path: /healthz }
            expect: { status: 200 }
          - action: { restart: cache }
"#;

fn errors(src: &str) -> Vec<DefinitionError> {
    parse("demo/lab.yaml", src, Some("demo")).unwrap_err().errors
}

#[test]
fn a_good_definition_loads() {
    let def = parse("demo/lab.yaml", GOOD, Some("demo")).unwrap();
    assert_eq!(def.service.name, "app");
    assert_eq!(def.service.replicas, 1);
    assert!(matches!(def.stages[0].checks[0].steps[1].action, Some(Action::Restart(ref t)) if t == "cache"));
}

#[test]
fn unknown_fields_point_at_their_line() {
    let src = GOOD.replace("  port: 8080", "  port: 8080\n  prot: 9090");
    let e = &errors(&src)[0];
    assert_eq!((e.line, e.column), (8, 3), "{e}");
    assert!(e.message.contains("unknown field `prot`"), "{}", e.message);
    assert!(e.hint.as_deref().unwrap().contains("spelling"));
    assert!(e.to_string().starts_with("demo/lab.yaml:8:3: "), "{e}");
}

#[test]
fn a_bad_reference_points_at_the_action() {
    let src = GOOD.replace("restart: cache", "restart: database");
    let e = &errors(&src)[0];
    assert_eq!(e.line, 19, "{e}");
    assert!(e.message.contains("`database` is neither a dependency nor the service"), "{}", e.message);
    assert!(e.hint.as_deref().unwrap().contains("cache"));
}

#[test]
fn an_unknown_template_and_an_undefined_variable_are_both_reported() {
    let src = GOOD.replace("template: redis", "template: mongo").replace("deps.cache.addr", "deps.db.addr");
    let errs = errors(&src);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!(errs[0].line, 5);
    assert!(errs[0].message.contains("no compose template named `mongo`"));
    assert_eq!(errs[1].line, 9);
    assert!(errs[1].message.contains("REDIS_ADDR"), "{}", errs[1].message);
}

#[test]
fn folder_and_name_must_agree() {
    let e = &parse("x/lab.yaml", GOOD, Some("other")).unwrap_err().errors[0];
    assert_eq!(e.line, 1);
    assert!(e.message.contains("differs from its folder `other`"));
}

#[test]
fn steps_need_exactly_one_kind_and_sane_matchers() {
    let src = GOOD.replace("          - action: { restart: cache }\n", "          - action: { restart: cache }\n            expect: { status: 200 }\n          - request: { path: nope, method: FETCH }\n            expect: { headers: { Location: { matches: \"(\" } }, json: { code: { equals: x } } }\n");
    let msgs: Vec<String> = errors(&src).iter().map(|e| format!("{}:{} {}", e.line, e.column, e.message)).collect();
    let all = msgs.join("\n");
    assert!(all.contains("go with a `request`, not an `action`"), "{all}");
    assert!(all.contains("unknown method `FETCH`"), "{all}");
    assert!(all.contains("path `nope` must start with /"), "{all}");
    assert!(all.contains("not a regular expression"), "{all}");
    assert!(all.contains("`code` is not a JSON pointer"), "{all}");
}

#[test]
fn duplicate_check_names_are_refused() {
    let src = GOOD.replace("  - stage: basics", "  - stage: first\n    checks:\n      - name: up\n        expect: x\n        steps:\n          - request: { path: / }\n  - stage: basics");
    assert!(errors(&src).iter().any(|e| e.message.contains("used twice")));
}

#[test]
fn yaml_syntax_errors_have_a_location() {
    let e = &errors("name: demo\ntitle: [unclosed\n")[0];
    assert!(e.line >= 2, "{e}");
}

#[test]
fn every_builtin_lab_is_valid() {
    let cat = Catalogue::new(vec![]);
    let all = cat.all();
    assert!(!all.is_empty());
    for (name, res) in all {
        if let Err(e) = res {
            panic!("{name}: {e:?}");
        }
    }
}

#[test]
fn probe_steps_load_and_their_mistakes_are_located() {
    let probe = "          - probe: { exec: { args: [list, \"--json\"], env: { TASKS_FILE: \"{{ run.dir }}/t.json\" } } }\n            expect: { json: { /exit: { equals: \"0\" } } }\n          - action: { restart: cache }\n";
    let src = GOOD.replace("          - action: { restart: cache }\n", probe);
    let def = parse("demo/lab.yaml", &src, Some("demo")).unwrap();
    let Some(Probe::Exec(x)) = &def.stages[0].checks[0].steps[1].probe else { panic!("an exec probe") };
    assert_eq!(x.args, ["list", "--json"]);

    let bad = src.replace("json: { /exit: { equals: \"0\" } }", "status: 200");
    let e = &errors(&bad)[0];
    assert!(e.message.contains("has no status"), "{e}");
    assert_eq!(e.line, 20, "{e}");

    let bad = src.replace("\"{{ run.dir }}/t.json\"", "\"{{ run.dir \"");
    assert!(errors(&bad)[0].message.contains("template"), "{}", errors(&bad)[0]);

    let bad = src.replace("- probe: { exec:", "- request: { path: / }\n            probe: { exec:");
    assert!(errors(&bad)[0].message.contains("exactly one of"), "{}", errors(&bad)[0]);
}

#[test]
fn requests_to_a_dependency_name_one() {
    let src = GOOD.replace("request: { path: /healthz }", "request: { path: /api/v1/query, dep: cache }");
    assert!(parse("demo/lab.yaml", &src, Some("demo")).is_ok());
    let bad = GOOD.replace("request: { path: /healthz }", "request: { path: /api/v1/query, dep: prometheus }");
    let e = &errors(&bad)[0];
    assert!(e.message.contains("`prometheus` is not a dependency"), "{e}");
    let bad = GOOD.replace("request: { path: /healthz }", "request: { path: /x, dep: app }");
    assert!(errors(&bad)[0].message.contains("not a dependency"));
}

const CLI: &str = r#"name: demo
title: A command-line demo
service:
  name: task
  run: cli
stages:
  - stage: basics
    checks:
      - name: add
        expect: it adds
        steps:
          - probe: { exec: { args: [add, x], files: { .config/t.yaml: "file: a.json" }, read: [a.json], fsize_limit: 4096 } }
            expect: { json: { /exit: { equals: "0" }, /stderr: { not_contains: "panic:" } } }
"#;

#[test]
fn a_command_line_lab_needs_no_port_and_refuses_requests_and_chaos_where_they_are() {
    let def = parse("demo/lab.yaml", CLI, Some("demo")).unwrap();
    assert_eq!(def.service.run, RunKind::Cli);
    let Some(Probe::Exec(x)) = &def.stages[0].checks[0].steps[0].probe else { panic!("an exec probe") };
    assert_eq!((x.read.as_slice(), x.fsize_limit), (&["a.json".to_string()][..], Some(4096)));

    let bad = CLI.replace("          - probe:", "          - request: { path: /healthz }\n          - action: { chaos: { fault: kill } }\n          - probe:");
    let errs = errors(&bad);
    let req = errs.iter().find(|e| e.message.contains("no service to send HTTP requests to")).unwrap_or_else(|| panic!("{errs:?}"));
    assert_eq!(req.line, 12, "{req}");
    let chaos = errs.iter().find(|e| e.message.contains("nothing for chaos to break")).unwrap_or_else(|| panic!("{errs:?}"));
    assert_eq!(chaos.line, 13, "{chaos}");

    let bad = CLI.replace("stages:", "chaos:\n  boom: { fault: kill, target: task }\nstages:");
    let e = &errors(&bad)[0];
    assert!(e.message.contains("nothing for chaos to break"), "{e}");
    assert_eq!(e.line, 7, "{e}");

    let bad = CLI.replace("  run: cli\n", "  run: cli\n  port: 8080\n  ready: { path: /healthz }\n");
    let all: Vec<String> = errors(&bad).iter().map(|e| e.message.clone()).collect();
    assert!(all.iter().any(|m| m.contains("listens on no port")) && all.iter().any(|m| m.contains("no readiness probe")), "{all:?}");

    // A service in containers still needs its port and readiness probe.
    let bad = GOOD.replace("  port: 8080\n", "").replace("  ready: { path: /healthz }\n", "");
    let all: Vec<String> = errors(&bad).iter().map(|e| e.message.clone()).collect();
    assert!(all.iter().any(|m| m.contains("needs a port")) && all.iter().any(|m| m.contains("needs `ready`")), "{all:?}");
}

#[test]
fn a_fault_target_that_does_not_exist_is_refused_where_it_is_written() {
    let raft = &include_str!("../../labs/raft/lab.yaml").replacen("name: raft", "name: demo", 1);
    let bad = raft.replacen("fault: kill, target: leader }", "fault: kill, target: laeder }", 1);
    let line = bad.lines().position(|l| l.contains("laeder")).unwrap() + 1;
    let errs = errors(&bad);
    let e = errs.iter().find(|e| e.message.contains("no target `laeder`")).unwrap_or_else(|| panic!("{errs:?}"));
    assert_eq!(e.line, line, "{e}");
    assert!(e.to_string().contains("app-3") || format!("{e:?}").contains("app-3"), "names the targets there are: {e:?}");
    // Node numbers past the replicas, in the nemesis too.
    let bad = raft.replacen("fault: partition, target: leader, for: 3s", "fault: partition, target: 4, for: 3s", 1);
    assert!(errors(&bad).iter().any(|e| e.message.contains("no target `4`")), "{:?}", errors(&bad));
}
