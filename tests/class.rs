//! `lab class` on the real Docker engine: a roster of five, one of them with
//! a broken solution; up, verify, status and down of the whole class.

mod common;

use std::process::Command;

use common::*;

/// `class up --prune` removes every url-shortener student instance not on
/// its roster, so the tests that bring up url-shortener classes take turns.
static ONE_CLASS_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_class_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_CLASS_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// The class of five, in natural order (the roster lists them in another).
const CLASS: [&str; 5] = ["s1", "s2", "s3", "s10", "s11"];

#[test]
fn a_class_of_five_comes_up_is_verified_shows_its_one_broken_student_and_goes() {
    let _turn = one_class_at_a_time();
    let _down = ["s1", "s2", "s3", "s10", "s11"].map(|s| Down("url-shortener", Some(s)));
    let dir = tempfile::tempdir().unwrap();
    common::shortener_with_bug(&dir.path().join("broken"), "redirect-301");
    std::os::unix::fs::symlink(shortener(), dir.path().join("good")).unwrap();
    let roster = dir.path().join("class.csv");
    std::fs::write(&roster, "id,name,solution\ns10,Student Ten,good\ns2,\"Two, Jr.\",broken\ns1,Student One,good\ns11,Student Eleven,good\ns3,Student Three,good\n").unwrap();

    let mut c = lab();
    c.args(["class", "up", "url-shortener", "--jobs", "3", "--roster"]).arg(&roster);
    let out = run(c);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    for s in CLASS {
        assert!(err.lines().any(|l| l.contains(&format!("✓ {s} ")) && l.contains("up in")), "no progress line for {s}:\n{err}");
    }
    assert!(stdout(&out).contains("up: 5 of 5 students"), "{}", stdout(&out));

    let mut c = lab();
    c.args(["class", "verify", "url-shortener", "--jobs", "3", "--roster"]).arg(&roster);
    let out = run(c);
    assert_eq!(out.status.code(), Some(1), "one student's service fails a check");
    assert!(stdout(&out).contains("all checks passed: 4 of 5 students; not: s2"), "{}", stdout(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.lines().any(|l| l.contains("✗ s2") && l.contains("first failed: redirect") && l.contains("301")), "{err}");

    // The verdicts are kept with the instances: status reads them back, in natural order.
    let mut c = lab();
    c.args(["class", "status", "url-shortener", "--json", "--roster"]).arg(&roster);
    let out = run(c);
    assert_eq!(out.status.code(), Some(0));
    let status = json(&out);
    let rows = status["students"].as_array().unwrap();
    assert_eq!(rows.iter().map(|r| r["student"].as_str().unwrap()).collect::<Vec<_>>(), CLASS, "{status:#}");
    for r in rows {
        assert_eq!(r["state"], "running", "{r:#}");
        let v = &r["verdict"];
        if r["student"] == "s2" {
            assert_eq!(v["first_failed"], "redirect", "{r:#}");
            assert!(v["failed"].as_u64().unwrap() >= 1, "{r:#}");
        } else {
            assert_eq!((v["passed"].as_u64(), v["failed"].as_u64(), v["first_failed"].as_str()), (Some(10), Some(0), None), "{r:#}");
        }
    }
    let mut c = lab();
    c.args(["class", "status", "url-shortener", "--roster"]).arg(&roster);
    let table = stdout(&run(c));
    let s2 = table.lines().find(|l| l.starts_with("s2 ")).unwrap_or_else(|| panic!("{table}"));
    assert!(s2.contains("running") && s2.contains("redirect"), "{table}");

    // The board shows the same, read from the page's DOM in headless Chromium;
    // a link to a red cell (`#s2/redirect`, what a click sets) opens its failure.
    board_shows_the_class(&roster, &CLASS, ("s2", "redirect"), "301 Moved Permanently");

    // On Docker a student's credentials are their own instance's addresses, readable by the owner alone.
    let creds = dir.path().join("creds");
    let mut c = lab();
    c.args(["class", "credentials", "url-shortener", "--out"]).arg(&creds).arg("--roster").arg(&roster);
    assert_eq!(run(c).status.code(), Some(0));
    let env = std::fs::read_to_string(creds.join("s2.env")).unwrap();
    assert!(env.contains("LAB_INSTANCE=lab-url-shortener--s2\n") && env.contains("APP_1_ADDR=127.0.0.1:"), "{env}");
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(creds.join("s2.env")).unwrap().permissions()) & 0o777, 0o600);
    // Each student's tokens are their own: s1's fault proxy refuses s2's, and
    // a private board shows s2's token s2's row alone.
    let var = |s: &str, k: &str| {
        let env = std::fs::read_to_string(creds.join(format!("{s}.env"))).unwrap();
        env.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).unwrap_or_else(|| panic!("no {k} in {s}.env:\n{env}")).to_string()
    };
    let s1_proxy = var("s1", "PROXY_1_ADDR");
    assert_ne!(var("s1", "LAB_PROXY_TOKEN"), var("s2", "LAB_PROXY_TOKEN"));
    let refused = proxy_control(&s1_proxy, &var("s2", "LAB_PROXY_TOKEN"));
    assert!(refused.contains("\"ok\":false") && refused.contains("token"), "{refused}");
    let taken = proxy_control(&s1_proxy, &var("s1", "LAB_PROXY_TOKEN"));
    assert!(taken.lines().all(|l| l.contains("\"ok\":true")) && taken.lines().count() == 2, "{taken}");
    private_board_shows_each_student_their_own(&roster, &var("s2", "LAB_BOARD_TOKEN"));

    // Down asks first: with no terminal to ask on, it wants --yes.
    let mut c = lab();
    c.args(["class", "down", "url-shortener", "--roster"]).arg(&roster).stdin(std::process::Stdio::null());
    let out = run(c);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("add --yes"));
    let mut c = lab();
    c.args(["class", "down", "url-shortener", "--yes", "--roster"]).arg(&roster);
    let out = run(c);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("removed 5 student instances"), "{}", stdout(&out));
    for s in CLASS {
        assert_gone(&format!("lab-url-shortener--{s}"));
    }
}

/// Sends a fault proxy's control port the token, then `list`; what it answered.
fn proxy_control(addr: &str, token: &str) -> String {
    use std::io::{Read, Write};
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    write!(sock, "{{\"cmd\":\"auth\",\"token\":\"{token}\"}}\n{{\"cmd\":\"list\"}}\n").unwrap();
    sock.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    let _ = sock.read_to_string(&mut answer);
    answer
}

/// A GET on the board's server: (status, body).
fn get(url: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut sock = std::net::TcpStream::connect(host).unwrap();
    write!(sock, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut text = String::new();
    sock.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

/// `class board --private`: nothing without a token, the class with the
/// instructor's (the printed address), one row with a student's, in the
/// server's answers and on the page Chromium loads.
fn private_board_shows_each_student_their_own(roster: &std::path::Path, s2_token: &str) {
    use std::io::BufRead;
    let mut c = lab();
    c.args(["class", "board", "url-shortener", "--private", "--listen", "127.0.0.1:0", "--roster"]).arg(roster).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null());
    let mut board = c.spawn().unwrap();
    let mut first = String::new();
    std::io::BufReader::new(board.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let url = first.split_whitespace().find(|w| w.starts_with("http://127.0.0.1:")).unwrap_or_else(|| panic!("no URL in {first:?}")).to_string();
    let (base, instructor) = url.split_once("/?token=").unwrap_or_else(|| panic!("a private board prints its token: {url}"));
    let students = |body: &str| serde_json::from_str::<serde_json::Value>(body).unwrap()["students"].as_array().unwrap().iter().map(|r| r["student"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    let (code, body) = get(&format!("{base}/state"));
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("private"), "{body}");
    let (code, body) = get(&format!("{base}/state?token={}", &s2_token[..s2_token.len() - 1]));
    assert_eq!(code, 401, "{body}");
    let (code, body) = get(&format!("{base}/state?token={instructor}"));
    assert_eq!((code, students(&body)), (200, CLASS.map(String::from).to_vec()), "{body}");
    let (code, body) = get(&format!("{base}/state?token={s2_token}"));
    assert_eq!((code, students(&body)), (200, vec!["s2".to_string()]), "{body}");
    let out = Command::new("chromium").args(["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000", "--dump-dom"]).arg(format!("{base}/?token={s2_token}")).output().unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = dom.split("data-student=\"").skip(1).map(|r| r.split('"').next().unwrap()).collect();
    assert_eq!(rows, ["s2"], "{dom}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(board.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    assert_eq!(board.wait().unwrap().code(), Some(0));
}

/// Starts `lab class board` on a free port, loads the page in headless
/// Chromium (with a failure chosen), checks the grid and the failure shown,
/// takes a screenshot, and stops the board with SIGINT.
fn board_shows_the_class(roster: &std::path::Path, students: &[&str], red: (&str, &str), words: &str) {
    use std::io::BufRead;
    let mut c = lab();
    c.args(["class", "board", "url-shortener", "--listen", "127.0.0.1:0", "--roster"]).arg(roster).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut board = c.spawn().unwrap();
    let mut first = String::new();
    std::io::BufReader::new(board.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let url = first.split_whitespace().find(|w| w.starts_with("http://127.0.0.1:")).unwrap_or_else(|| panic!("no URL in {first:?}")).to_string();
    let page = format!("{url}#{}/{}", red.0, red.1);
    let chromium = |extra: &[&str]| {
        let out = Command::new("chromium")
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=5000"])
            .args(extra)
            .arg(&page)
            .output()
            .expect("chromium runs (Debian's chromium package; .ci/setup installs it)");
        assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let dom = chromium(&["--dump-dom"]);
    // Rows in natural order, one cell per check of each, the red one where the failure is.
    let rows: Vec<&str> = dom.split("data-student=\"").skip(1).map(|r| r.split('"').next().unwrap()).collect();
    assert_eq!(rows, students, "{dom}");
    let cells = |status: &str| dom.matches(&format!("data-status=\"{status}\"")).count();
    assert_eq!(cells("failed"), 1, "{dom}");
    assert_eq!(cells("passed") + cells("failed") + cells("skipped") + cells("none"), students.len() * 10, "{dom}");
    let row = dom.split(&format!("data-student=\"{}\"", red.0)).nth(1).unwrap().split("</tr>").next().unwrap();
    assert!(row.contains(&format!("data-check=\"{}\" data-status=\"failed\"", red.1)), "{row}");
    let detail = dom.split("id=\"detail\"").nth(1).unwrap_or_else(|| panic!("{dom}"));
    assert!(!detail.starts_with(" hidden"), "the failure is not shown: {detail}");
    assert!(detail.contains(words) && detail.contains("data-field=\"hint\""), "{detail}");
    // No script, style or font from elsewhere.
    assert!(!dom.contains("src=\"http") && !dom.contains("href=\"http"), "{dom}");
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("class-board.png");
    chromium(&["--window-size=1100,600", &format!("--screenshot={}", shot.display())]);
    assert!(std::fs::metadata(&shot).map(|m| m.len() > 10_000).unwrap_or(false), "no screenshot at {}", shot.display());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(board.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    assert_eq!(board.wait().unwrap().code(), Some(0));
}

#[test]
fn a_bad_roster_is_refused_at_its_line_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let roster = dir.path().join("class.csv");
    std::fs::write(&roster, "id,name\nann,Ann\nBob Smith,Bob\n").unwrap();
    let mut c = lab();
    c.args(["class", "up", "url-shortener", "--roster"]).arg(&roster);
    let out = run(c);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("class.csv:3: student id \"Bob Smith\" cannot name an instance"), "{err}");
    assert!(err.contains("lower-case letters and digits"), "{err}");
    assert!(docker_names("container", "label=lab.instance=lab-url-shortener--ann").is_empty());
}

/// Ctrl-C during `class up` stops the class where it is: the students whose
/// `up` finished stay, the one being brought up is removed by its own `lab`
/// (it did not exist before), the rest never start; exit 130. A later `class
/// up --prune` with a shorter roster removes the students no longer on it.
#[test]
fn ctrl_c_stops_class_up_cleanly_and_prune_removes_who_left_the_roster() {
    use std::io::BufRead;
    let _turn = one_class_at_a_time();
    let _down = [Down("url-shortener", Some("p1")), Down("url-shortener", Some("p2")), Down("url-shortener", Some("p3")), Down("url-shortener", Some("p8")), Down("url-shortener", Some("p9"))];
    let dir = tempfile::tempdir().unwrap();
    let roster = dir.path().join("class.csv");
    let good = shortener();
    std::fs::write(&roster, format!("id,name,solution\np1,P One,{0}\np2,P Two,{0}\np3,P Three,{0}\n", good.display())).unwrap();
    let mut c = lab();
    c.args(["class", "up", "url-shortener", "--jobs", "1", "--roster"]).arg(&roster).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    // After the first student is up, interrupt while the next one comes up.
    loop {
        let mut l = String::new();
        assert!(err.read_line(&mut l).unwrap() > 0, "class up ended before any student was up:\n{said}");
        said += &l;
        if l.contains(" up in ") {
            break;
        }
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    said += &rest;
    assert_eq!(child.wait().unwrap().code(), Some(130), "{said}");
    let up: Vec<&str> = ["p1", "p2", "p3"].into_iter().filter(|s| said.lines().any(|l| l.contains(&format!("✓ {s} ")) && l.contains(" up in "))).collect();
    assert!(!up.is_empty() && up.len() < 3, "{said}");
    for s in ["p1", "p2", "p3"] {
        let instance = format!("lab-url-shortener--{s}");
        if up.contains(&s) {
            assert_eq!(docker_names("container", &format!("label=lab.instance={instance}")).len(), 3, "{s} was up before Ctrl-C:\n{said}");
        } else {
            assert_gone(&instance);
        }
    }

    // The whole roster, then a shorter one with --prune.
    let mut c = lab();
    c.args(["class", "up", "url-shortener", "--roster"]).arg(&roster);
    assert_eq!(run(c).status.code(), Some(0));
    // A student's own `lab up` keeps their instance in the class; another
    // class's student and one brought up by hand are not this class's.
    for (s, how) in [("p2", None), ("p9", None), ("p8", Some("tuesday"))] {
        let mut c = lab();
        match how {
            None => drop(c.args(["up", "url-shortener", "--quiet", "--student", s, "--solution"]).arg(&good)),
            Some(class) => {
                let other = dir.path().join(format!("{class}.csv"));
                std::fs::write(&other, format!("id,name,solution\n{s},Other,{}\n", good.display())).unwrap();
                c.args(["class", "up", "url-shortener", "--roster"]).arg(&other);
            }
        }
        assert_eq!(run(c).status.code(), Some(0), "{s}");
    }
    std::fs::write(&roster, format!("id,name,solution\np1,P One,{}\n", good.display())).unwrap();
    let mut c = lab();
    c.args(["class", "up", "url-shortener", "--prune", "--roster"]).arg(&roster);
    let out = run(c);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    for s in ["p2", "p3"] {
        assert!(err.lines().any(|l| l.contains(&format!("- {s} ")) && l.contains("not on the roster: removed")), "{err}");
        assert_gone(&format!("lab-url-shortener--{s}"));
    }
    assert_eq!(docker_names("container", "label=lab.instance=lab-url-shortener--p1").len(), 3, "p1 stays");
    for (s, whose) in [("p8", "by class tuesday, not by class class"), ("p9", "not by a class (lab up --student)")] {
        assert!(err.lines().any(|l| l.contains(&format!("· {s} ")) && l.contains("left alone") && l.contains(whose)), "{s}: {err}");
        assert_eq!(docker_names("container", &format!("label=lab.instance=lab-url-shortener--{s}")).len(), 3, "{s} stays");
    }
    let mut c = lab();
    c.args(["class", "down", "url-shortener", "--yes", "--roster"]).arg(&roster);
    assert_eq!(run(c).status.code(), Some(0));
    assert_gone("lab-url-shortener--p1");
}

/// A roster's `git` column: the student's repository is cloned into lab's
/// cache for `class up` and fetched again for `class verify`, so the verdict
/// is of their latest push; a repository that cannot be fetched fails that
/// student alone, saying so.
#[test]
fn a_students_git_repository_is_fetched_before_each_run() {
    let _turn = one_class_at_a_time();
    let _down = [Down("url-shortener", Some("g1")), Down("url-shortener", Some("g2"))];
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("g1-shortener");
    let git = |args: &[&str]| {
        let out = Command::new("git").args(["-c", "user.name=G One", "-c", "user.email=g1@example.org", "-c", "init.defaultBranch=main"]).args(args).current_dir(&repo).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    std::fs::create_dir_all(&repo).unwrap();
    git(&["init", "-q"]);
    common::shortener_with_bug(&repo, "");
    git(&["add", "."]);
    git(&["commit", "-qm", "a shortener"]);
    let roster = dir.path().join("class.csv");
    std::fs::write(&roster, format!("id,name,git\ng1,G One,file://{}\ng2,G Two,file://{}/nowhere.git\n", repo.display(), dir.path().display())).unwrap();
    let cache = dir.path().join("cache");
    let mut c = lab();
    c.env("LAB_CACHE_DIR", &cache).args(["class", "up", "url-shortener", "--roster"]).arg(&roster);
    let out = run(c);
    assert_eq!(out.status.code(), Some(4), "g2's repository cannot be fetched");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.lines().any(|l| l.contains("✗ g2") && l.contains("could not fetch their repository") && l.contains("nowhere.git")), "{err}");
    assert!(err.lines().any(|l| l.contains("✓ g1") && l.contains("up in")), "{err}");
    assert_gone("lab-url-shortener--g2");

    // g1 pushes a bug: the next verify fetches it and fails where the bug is.
    common::shortener_with_bug(&repo, "redirect-301");
    git(&["commit", "-qam", "permanent redirects"]);
    std::fs::write(&roster, format!("id,name,git\ng1,G One,file://{}\n", repo.display())).unwrap();
    let mut c = lab();
    c.env("LAB_CACHE_DIR", &cache).args(["class", "verify", "url-shortener", "--roster"]).arg(&roster);
    let out = run(c);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.lines().any(|l| l.contains("✗ g1") && l.contains("first failed: redirect")), "{err}");
    let mut c = lab();
    c.args(["class", "down", "url-shortener", "--yes", "--roster"]).arg(&roster);
    assert_eq!(run(c).status.code(), Some(0));
    assert_gone("lab-url-shortener--g1");
}
