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

/// (line, column) of the first occurrence of `needle` in `src`, 1-based.
fn line_col(src: &str, needle: &str) -> (usize, usize) {
    let at = src.find(needle).unwrap_or_else(|| panic!("{needle} not in the source"));
    let line_start = src[..at].rfind('\n').map_or(0, |i| i + 1);
    (src[..at].matches('\n').count() + 1, src[line_start..at].chars().count() + 1)
}

#[test]
fn a_step_template_with_an_undefined_variable_is_refused_where_it_is_written() {
    // What `lab verify` would render: a request path, a JSON body, a matcher.
    let steps = "          - request: { path: \"/kv/{{ nosuch }}\" }\n          - request: { method: PUT, path: /kv/a, json: { v: [\"{{ leaderr }}\"] } }\n            expect: { json: { /v: { equals: \"{{ run.idd }}\" } } }\n";
    let src = GOOD.replace("          - action: { restart: cache }\n", steps);
    let errs = errors(&src);
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert_eq!((errs[0].line, errs[0].column), line_col(&src, "\"/kv/{{ nosuch }}\""), "{}", errs[0]);
    assert!(errs[0].message.contains("undefined variable `nosuch`") && errs[0].message.contains("step 2 of check `up`"), "{}", errs[0].message);
    let hint = errs[0].hint.as_deref().unwrap();
    assert!(hint.contains("run.{dir,id,net}") && hint.contains("deps.cache.{addr,host,port}") && hint.contains("env.{REDIS_ADDR}") && hint.contains("secret"), "{hint}");
    assert_eq!((errs[1].line, errs[1].column), line_col(&src, "\"{{ leaderr }}\""), "{}", errs[1]);
    assert!(errs[1].hint.as_deref().unwrap().contains("did you mean `leader`?") && errs[1].hint.as_deref().unwrap().contains("wait-leader"), "{:?}", errs[1].hint);
    assert_eq!((errs[2].line, errs[2].column), line_col(&src, "\"{{ run.idd }}\""), "{}", errs[2]);
    assert!(errs[2].message.contains("`run.idd`") && errs[2].hint.as_deref().unwrap().contains("`run.id`"), "{errs:?}");

    // What earlier steps of the check saved (and a field of it), the leader after wait-leader,
    // and this step's own save in its expectation are all defined.
    let ok = GOOD.replace(
        "          - action: { restart: cache }\n",
        "          - request: { method: POST, path: /links, body: \"{{ secret }}\" }\n            save: { code: /code, own: /own }\n            expect: { json: { /own: { equals: \"{{ own }}\" } } }\n          - request: { path: \"/r/{{ code }}/{{ code.inner }}\", headers: { X-Dep: \"{{ deps.cache.addr }}\" } }\n            repeat: 2\n            expect: { body: { contains: \"{{ i }} {{ env.REDIS_ADDR }} {{ service.urls[0] }}\" } }\n",
    );
    parse("demo/lab.yaml", &ok, Some("demo")).unwrap();
    // A step cannot use what it saves in its own request, nor what a later step saves.
    let bad = ok.replace("path: /links,", "path: \"/links/{{ own }}/{{ code }}\",");
    let errs = errors(&bad);
    assert!(errs[0].hint.as_deref().unwrap().contains("only its `expect` can use it"), "{errs:?}");
    let bad = ok.replace("body: \"{{ secret }}\"", "body: \"{{ nope | nosuchfilter }}\"");
    assert!(errors(&bad)[0].message.contains("undefined variable `nope`"), "{:?}", errors(&bad));

    // The leader once a wait-leader action found one.
    let raft = include_str!("../../labs/raft/lab.yaml").replacen("name: raft", "name: demo", 1);
    parse("demo/lab.yaml", &raft, Some("demo")).unwrap();
    let bad = raft.replacen("node: \"{{ leader }}\", json: { value: \"v1\" }", "node: \"{{ leader }}\", json: { value: \"{{ leaderr }}\" }", 1);
    let e = &errors(&bad)[0];
    assert_eq!((e.line, e.column), line_col(&bad, "\"{{ leaderr }}\""), "{e}");
    assert!(e.hint.as_deref().unwrap().contains("did you mean `leader`?") && e.hint.as_deref().unwrap().contains("set by earlier steps of this check: election, follower, leader"), "{e:?}");
}

#[test]
fn a_key_given_twice_is_refused_where_it_is_given_again() {
    // A field of a struct (serde_yaml says where the mapping starts) and a key of a map (it keeps the last).
    let src = GOOD.replace("  ready: { path: /healthz }\n", "  ready: { path: /healthz }\n  port: 9090\n").replace("    REDIS_ADDR:", "    X: \"1\"\n    X: \"2\"\n    REDIS_ADDR:");
    let errs = errors(&src);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!((errs[0].line, errs[0].column), (10, 5), "{}", errs[0]);
    assert!(errs[0].message.contains("key `X` is given twice in `service.env`: first at line 9, column 5"), "{}", errs[0].message);
    assert_eq!((errs[1].line, errs[1].column), line_col(&src, "port: 9090"), "{}", errs[1]);
    assert!(errs[1].message.contains("key `port` is given twice in `service`: first at line 7, column 3"), "{}", errs[1].message);
    assert!(errs[1].hint.as_deref().unwrap().contains("remove one"));
    let e = &errors(&GOOD.replace("stages:", "title: Again\nstages:"))[0];
    assert_eq!((e.line, e.column), (11, 1), "{e}");
    assert!(e.message.contains("at the top level"), "{e}");
}

#[test]
fn an_alias_bomb_is_refused_at_the_alias_that_blows_up() {
    let mut bomb = String::from("              json:\n                a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for (name, of) in [("b", "a"), ("c", "b"), ("d", "c"), ("e", "d"), ("f", "e"), ("g", "f"), ("h", "g"), ("i", "h")] {
        bomb.push_str(&format!("                {name}: &{name} [{}]\n", vec![format!("*{of}"); 9].join(", ")));
    }
    let src = GOOD.replace("          - request: { path: /healthz }\n", &format!("          - request:\n              path: /healthz\n{bomb}"));
    let e = &errors(&src)[0];
    // Reading `a` to `e` takes 8298 expansions, each `*e` 7381 more: the second passes 100 per node written (178 nodes).
    let (line, column) = line_col(&src, "*e, *e");
    assert_eq!((e.line, e.column), (line, column + 4), "{e}");
    assert!(e.message.contains("the alias `*e` expands too far"), "{e}");
    assert!(e.hint.as_deref().unwrap().contains("billion laughs"), "{e:?}");
}

#[test]
fn a_file_that_is_not_utf8_is_refused_at_its_first_invalid_byte() {
    let mut bytes = GOOD.replace("title: A demo", "title: A café demo").into_bytes();
    let at = bytes.windows(2).position(|w| w == "é".as_bytes()).unwrap();
    bytes.splice(at..at + 2, [0xE9]);
    let e = &parse_bytes("demo/lab.yaml", &bytes, Some("demo")).unwrap_err().errors[0];
    assert_eq!((e.line, e.column), (2, 13), "{e}");
    assert!(e.message.contains("not UTF-8: 0xE9 at byte offset 23 is not part of a UTF-8 character"), "{e}");
    assert!(e.hint.as_deref().unwrap().contains("iconv"), "{e:?}");
    // A file cut inside a character.
    let e = &parse_bytes("demo/lab.yaml", "name: demo\ntitle: é".as_bytes().split_last().unwrap().1, Some("demo")).unwrap_err().errors[0];
    assert_eq!((e.line, e.column), (2, 8), "{e}");
    assert!(e.message.contains("ends inside the character that starts at byte offset 18"), "{e}");
    // UTF-8 still loads.
    parse_bytes("demo/lab.yaml", GOOD.as_bytes(), Some("demo")).unwrap();
}

/// The raft lab, renamed to match the test's folder.
fn raft_src() -> String {
    include_str!("../../labs/raft/lab.yaml").replacen("name: raft", "name: demo", 1)
}

const RAFT_LEADER: &str = "  leader:\n    path: /status\n    pointer: /leader\n    id_env: NODE_ID\n";

#[test]
fn everything_that_needs_the_leader_is_refused_without_service_leader() {
    let src = raft_src();
    assert!(src.contains(RAFT_LEADER));
    let bad = src.replacen(RAFT_LEADER, "", 1);
    let errs = errors(&bad);
    let at = |needle: &str, what: &str| {
        let (line, _) = line_col(&bad, needle);
        let e = errs.iter().find(|e| e.line == line && e.message.contains(what)).unwrap_or_else(|| panic!("nothing at line {line} ({needle}) saying {what:?}: {errs:#?}"));
        let hint = e.hint.as_deref().unwrap_or_default();
        assert!(hint.contains("service.leader") && hint.contains("pointer: /leader") && hint.contains("is: Leader") && hint.contains("writes: true"), "the hint names the fix and its forms: {hint}");
    };
    // A scenario, a check's chaos step, the nemesis, and wait-leader.
    at("kill-leader: { about: \"SIGKILL the leader\", fault: kill, target: leader }", "the target `leader` needs `service.leader`");
    at("- action: { chaos: { fault: kill, target: leader } }", "the target `leader` needs `service.leader`");
    at("- { at: 2s, fault: partition, target: leader, for: 3s }", "the target `leader` needs `service.leader`");
    at("- action: { wait-leader: 10s }", "wait-leader needs `service.leader`");
    // A redirect names the leader by id: the nodes' ids must be known.
    let e = errs.iter().find(|e| e.message.contains("a redirect names the leader by its id")).unwrap_or_else(|| panic!("{errs:#?}"));
    assert_eq!(e.line, line_col(&bad, "redirect: { status: [307]").0, "{e}");
    assert!(e.hint.as_deref().unwrap().contains("service.leader.id_env"), "{e:?}");
}

#[test]
fn a_leader_probe_reads_one_thing_and_has_what_that_needs() {
    let src = raft_src();
    let with = |probe: &str| src.replacen(RAFT_LEADER, probe, 1);
    // Every form loads.
    for ok in [
        "  leader: { path: /status, pointer: /leader, id_env: NODE_ID }\n",
        "  leader: { path: /status, pointer: \"\", id_env: NODE_ID }\n",
        "  leader: { path: /status, regex: \"leader=(\\\\S+)\", id: \"n{{ self.node }}\" }\n",
        "  leader: { path: /status, pointer: /state, is: Leader, id_env: NODE_ID }\n",
        "  leader: { header: X-Raft-State, is: Leader, id_env: NODE_ID }\n",
        "  leader: { path: /metrics, metric: \"raft_state{state=\\\"leader\\\"}\", is: \"1\", id_env: NODE_ID }\n",
        "  leader: { writes: true, id_env: NODE_ID }\n",
    ] {
        if let Err(e) = parse("demo/lab.yaml", &with(ok), Some("demo")) {
            panic!("{ok}: {e:?}");
        }
    }
    let refused = |probe: &str, path_needle: &str, what: &str, hint: &str| {
        let bad = with(probe);
        let errs = errors(&bad);
        let e = errs.iter().find(|e| e.message.contains(what)).unwrap_or_else(|| panic!("{probe}: nothing says {what:?}: {errs:#?}"));
        assert_eq!((e.line, e.column), line_col(&bad, path_needle), "{probe}: {e}");
        assert!(e.hint.as_deref().unwrap_or_default().contains(hint), "{probe}: hint {:?} lacks {hint:?}", e.hint);
    };
    refused("  leader: { path: /status, id_env: NODE_ID }\n", "{ path: /status, id_env", "does not say what to read", "metric");
    refused("  leader: { path: /status, pointer: /leader, regex: x, id_env: NODE_ID }\n", "{ path: /status, pointer", "2 ways to read the leader (pointer, regex)", "keep exactly one");
    refused("  leader: { pointer: /leader, writes: true, id_env: NODE_ID }\n", "{ pointer: /leader, writes", "2 ways to read the leader (pointer, writes)", "keep exactly one");
    refused("  leader: { path: /status, pointer: /leader }\n", "{ path: /status, pointer: /leader }", "does not say how each node is named", "id_env: NODE_ID");
    refused("  leader: { path: /status, pointer: /leader, id_env: NODE }\n", "NODE }", "`NODE` is not a variable of service.env", "NODE_ID");
    refused("  leader: { path: /status, regex: \"(\", id_env: NODE_ID }\n", "\"(\"", "not a regular expression", "first group");
    refused("  leader: { path: /status, pointer: leader, id_env: NODE_ID }\n", "leader, id_env", "`leader` is not a JSON pointer", "write /leader");
    refused("  leader: { path: status, pointer: /leader, id_env: NODE_ID }\n", "status, pointer", "path `status` must start with /", "/status");
    refused("  leader: { path: /metrics, metric: raft_is_leader, is: Leader }\n", "Leader }", "a metric's value is a number", "is: 1");
    refused("  leader: { path: /metrics, metric: \"raft_state{state=leader}\", is: \"1\" }\n", "\"raft_state{state=leader}\"", "double quotes", "raft_state{state=\"leader\"}");
    refused("  leader: { pointer: /leader, id: \"n{{ self.nod }}\" }\n", "\"n{{ self.nod }}\"", "template does not render", "self.node");
    // writes: true sends the workload's write and tells the leader by the others' redirects.
    let bad = with("  leader: { writes: true, id_env: NODE_ID }\n").replacen("  redirect: { status: [307], leader_header: X-Leader }\n", "", 1);
    let errs = errors(&bad);
    let e = errs.iter().find(|e| e.message.contains("`workload.redirect` is not given")).unwrap_or_else(|| panic!("{errs:#?}"));
    assert_eq!(e.line, line_col(&bad, "writes: true").0, "{e}");
    assert!(e.hint.as_deref().unwrap().contains("leader_header: X-Leader"), "{e:?}");
}

#[test]
fn a_value_that_is_not_a_json_pointer_is_refused_with_the_way_to_write_it() {
    let src = raft_src();
    let bad = src.replacen("      value: /value\n", "      value: \"value\"\n", 1);
    assert_ne!(bad, src);
    let errs = errors(&bad);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let e = &errs[0];
    assert_eq!((e.line, e.column), line_col(&bad, "\"value\"\n"), "{e}");
    assert!(e.message.contains("`value` is not a JSON pointer"), "{e}");
    assert_eq!(e.hint.as_deref(), Some("a JSON pointer starts with /: write /value; for a body that is the value itself write {body: text}"));
    // The whole body is written as such, and loads.
    parse("demo/lab.yaml", &src.replacen("      value: /value\n", "      value: { body: text }\n", 1), Some("demo")).unwrap();
}

#[test]
fn a_nemesis_fault_on_a_dependency_needs_its_target_and_options_that_parse() {
    let src = raft_src();
    let bad = src.replacen(
        "    - { at: 9500ms, fault: pause, target: random, for: 1500ms }\n",
        "    - { at: 9500ms, fault: outage, for: 1500ms }\n    - { at: 10s, fault: partition, options: { split: \"1,2\" } }\n",
        1,
    );
    let errs = errors(&bad);
    let e = errs.iter().find(|e| e.message.contains("outage needs a target")).unwrap_or_else(|| panic!("{errs:#?}"));
    assert_eq!(e.line, line_col(&bad, "fault: outage").0, "{e}");
    let e = errs.iter().find(|e| e.message.contains("the options of partition do not parse")).unwrap_or_else(|| panic!("{errs:#?}"));
    assert!(e.message.contains("give two or more sides"), "{e}");
    // A split without a target is fine: it acts on all nodes.
    parse("demo/lab.yaml", &src.replacen("fault: pause, target: random, for: 1500ms", "fault: partition, for: 1500ms, options: { split: \"1|2,3\" }", 1), Some("demo")).unwrap();
}

#[test]
fn a_heal_step_must_follow_a_chaos_step_of_its_fault() {
    let src = include_str!("../../labs/orders/lab.yaml").replacen("name: orders", "name: demo", 1);
    assert!(parse("demo/lab.yaml", &src, Some("demo")).is_ok(), "orders heals the reset it made");
    let bad = src.replacen("- action: { heal: reset }", "- action: { heal: partition }", 1);
    let errs = errors(&bad);
    let (line, _) = line_col(&bad, "- action: { heal: partition }");
    let e = errs.iter().find(|e| e.line == line).unwrap_or_else(|| panic!("nothing at line {line}: {errs:#?}"));
    assert!(e.message.contains("heal `partition`, but no earlier step of this check injects `partition`"), "{e}");
    assert!(e.hint.as_deref().unwrap_or_default().contains("`reset`"), "the hint names the fault there is: {e:?}");
    // Before any chaos step of its check: nothing to heal.
    let early = src.replacen("          # Every connection to RabbitMQ is reset when it next sends, and new ones are refused.\n", "          - action: { heal: all }\n", 1);
    let errs = errors(&early);
    assert!(errs.iter().any(|e| e.message.contains("heal `all`, but no earlier step of this check injects a fault")), "{errs:#?}");
}

#[test]
fn hints_no_step_can_trigger_are_refused_at_their_key() {
    let bad = GOOD.replacen("        expect: it answers\n", "        expect: it answers\n        hints: { stuck: lost }\n", 1);
    let errs = errors(&bad);
    let (line, _) = line_col(&bad, "hints: { stuck: lost }");
    let e = errs.iter().find(|e| e.message.contains("hint `stuck` can never be shown")).unwrap_or_else(|| panic!("{errs:#?}"));
    assert_eq!(e.line, line, "{e}");
    assert!(e.message.contains("expects a number"), "{e}");
    // A number expected but not polled: `over` can show, `rising` cannot.
    let steps = "          - request: { path: /count }\n            expect: { json: { /n: { equals: \"3\" } } }\n";
    let some =
        GOOD.replacen("        expect: it answers\n", "        expect: it answers\n        hints: { over: twice, rising: slow }\n", 1).replacen("          - action: { restart: cache }\n", steps, 1);
    let errs = errors(&some);
    assert!(!errs.iter().any(|e| e.message.contains("hint `over`")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.message.contains("hint `rising` can never be shown: no step of this check polls a number")), "{errs:#?}");
    // Polled: all three can show.
    let polled = some.replacen("expect: { json: { /n: { equals: \"3\" } } }", "retry_for: 5s\n            expect: { json: { /n: { equals: \"3\" } } }", 1);
    assert!(parse("demo/lab.yaml", &polled, Some("demo")).is_ok());
}

#[test]
fn a_burst_a_redis_probe_and_a_paced_repeat_are_checked_where_they_are_written() {
    let src = include_str!("../../labs/rate-limiter/lab.yaml").replacen("name: rate-limiter", "name: demo", 1);
    let def = parse("demo/lab.yaml", &src, Some("demo")).unwrap();
    assert_eq!(def.module.as_deref(), Some("System Design 1"));
    // Both or neither of command and keys; a dependency the lab does not have.
    let bad = src.replacen("- probe: { redis: { keys: \"*\" } }", "- probe: { redis: { keys: \"*\", command: [DBSIZE], dep: cache } }", 1);
    let errs = errors(&bad);
    let (line, _) = line_col(&bad, "dep: cache");
    assert!(errs.iter().any(|e| e.line == line && e.message.contains("exactly one of `command` and `keys`")), "{errs:#?}");
    let e = errs.iter().find(|e| e.message.contains("`cache` is not a dependency")).unwrap_or_else(|| panic!("{errs:#?}"));
    assert_eq!(e.hint.as_deref(), Some("known: redis"));
    // A burst's concurrency and count have bounds; its requests go to the service.
    let bad = src.replacen("count: 60\n                concurrency: 30", "count: 20000\n                concurrency: 0", 1).replacen(
        "path: /api/resource, headers: { X-API-Key: \"{{ run.id }}-race\" }",
        "path: /api/resource, dep: redis",
        1,
    );
    let errs = errors(&bad);
    for words in ["count 20000 is out of range", "concurrency 0 is out of range", "a burst goes to the learner's service"] {
        assert!(errs.iter().any(|e| e.message.contains(words)), "{words}: {errs:#?}");
    }
    // `interval` paces a repeat: alone it means nothing.
    let bad = src.replacen("            repeat: 5\n            interval: 200ms\n", "            interval: 200ms\n", 1);
    let errs = errors(&bad);
    let e = errs.iter().find(|e| e.message.contains("`interval` paces the repetitions")).unwrap_or_else(|| panic!("{errs:#?}"));
    assert!(e.hint.as_deref().unwrap_or_default().contains("action: {sleep: 1s}"), "{e:?}");
}

#[test]
fn a_bound_may_be_a_template_of_a_saved_value_and_nothing_else() {
    let src = include_str!("../../labs/timeouts/lab.yaml").replacen("name: timeouts", "name: demo", 1);
    let def = parse("demo/lab.yaml", &src, Some("demo")).unwrap();
    let last = def.stages.last().unwrap().checks[0].steps.last().unwrap();
    assert_eq!(last.expect.as_ref().unwrap().json["/goroutines"].max, Some(Bound::Template("{{ baseline + 15 }}".into())));
    // A variable no step saved, and a word that is no number, are refused where they are written.
    let bad = src.replacen("{{ baseline + 15 }}", "{{ baseline2 + 15 }}", 1).replacen("/goroutines: { min: 1, type: integer }", "/goroutines: { min: \"one\", type: integer }", 1);
    let errs = errors(&bad);
    assert!(errs.iter().any(|e| e.line == line_col(&bad, "{{ baseline2").0 && e.message.contains("baseline2")), "{errs:#?}");
    let e = errs.iter().find(|e| e.message.contains("`one` is not a whole number")).unwrap_or_else(|| panic!("{errs:#?}"));
    assert_eq!(e.line, line_col(&bad, "\"one\"").0);
}

#[test]
fn starter_routes_are_checked_and_point_at_their_line() {
    let with = |starter: &str| format!("{GOOD}starter:\n{starter}");
    // A good one: plain routes, a route with its check, a library.
    let ok = with("  libraries:\n    - { module: github.com/gomodule/redigo, version: v1.8.3, debian: golang-github-gomodule-redigo-dev }\n  routes:\n    - GET /healthz\n    - { route: \"GET /kv/{key}\", check: up }\n");
    let def = parse("demo/lab.yaml", &ok, Some("demo")).unwrap();
    assert_eq!(def.starter.routes[1].check.as_deref(), Some("up"));
    assert_eq!(def.starter_kind(), StarterKind::Http);

    let errs = errors(&with("  routes:\n    - FETCH /x\n    - { route: \"GET /kv/x{key}\", check: up }\n    - { route: GET /y, check: nope }\n    - GET /healthz\n    - GET /healthz\n"));
    let msgs: Vec<String> = errs.iter().map(|e| format!("{}:{} {}", e.line, e.column, e.message)).collect();
    assert_eq!(errs.len(), 4, "{msgs:#?}");
    assert!(errs[0].message.contains("`FETCH` is not an HTTP method") && errs[0].line == 22, "{msgs:#?}");
    assert!(errs[1].message.contains("not a wildcard Go's ServeMux knows") && errs[1].line == 23, "{msgs:#?}");
    assert!(errs[2].message.contains("no check named `nope`") && errs[2].line == 24, "{msgs:#?}");
    assert!(errs[2].hint.as_deref().unwrap().contains("up"), "the hint lists the checks");
    assert!(errs[3].message.contains("listed twice") && errs[3].line == 26, "{msgs:#?}");

    let errs = errors(&with("  libraries:\n    - { module: redigo, version: 1.8.3, debian: Redigo }\n  work:\n    - { check: later, todo: \"\" }\n"));
    let msgs: Vec<&str> = errs.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(errs.len(), 5, "{msgs:#?}");
}

#[test]
fn routes_of_a_grpc_or_command_line_service_are_its_methods_or_commands() {
    assert_eq!(route_problem(StarterKind::Grpc, "/auth.v1.Auth/Login"), None);
    assert_eq!(route_pattern(StarterKind::Grpc, "auth.v1.Auth/Login"), "/auth.v1.Auth/Login");
    assert!(route_problem(StarterKind::Grpc, "GET /login").is_some());
    assert_eq!(route_problem(StarterKind::Cli, "add"), None);
    assert!(route_problem(StarterKind::Cli, "--file").is_some());
    assert_eq!(route_problem(StarterKind::Http, "GET /files/{path...}"), None);
    assert_eq!(route_problem(StarterKind::Http, "GET /{$}"), None);
    assert!(route_problem(StarterKind::Http, "GET /{path...}/x").is_some());
    assert!(route_problem(StarterKind::Http, "/x").is_some());
}
