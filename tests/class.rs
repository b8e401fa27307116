//! `lab class` on the real Docker engine: a roster of three, one of them with
//! a broken solution; up, verify, status and down of the whole class.

mod common;

use common::*;

#[test]
fn a_class_of_three_comes_up_is_verified_shows_its_one_broken_student_and_goes() {
    let _down = [Down("url-shortener", Some("s1")), Down("url-shortener", Some("s2")), Down("url-shortener", Some("s10"))];
    let dir = tempfile::tempdir().unwrap();
    common::shortener_with_bug(&dir.path().join("broken"), "redirect-301");
    std::os::unix::fs::symlink(shortener(), dir.path().join("good")).unwrap();
    let roster = dir.path().join("class.csv");
    std::fs::write(&roster, "id,name,solution\ns10,Student Ten,good\ns2,\"Two, Jr.\",broken\ns1,Student One,good\n").unwrap();

    let mut c = lab();
    c.args(["class", "up", "url-shortener", "--jobs", "3", "--roster"]).arg(&roster);
    let out = run(c);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    for s in ["s1", "s2", "s10"] {
        assert!(err.lines().any(|l| l.contains(&format!("✓ {s} ")) && l.contains("up in")), "no progress line for {s}:\n{err}");
    }
    assert!(stdout(&out).contains("up: 3 of 3 students"), "{}", stdout(&out));

    let mut c = lab();
    c.args(["class", "verify", "url-shortener", "--jobs", "3", "--roster"]).arg(&roster);
    let out = run(c);
    assert_eq!(out.status.code(), Some(1), "one student's service fails a check");
    assert!(stdout(&out).contains("all checks passed: 2 of 3 students; not: s2"), "{}", stdout(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.lines().any(|l| l.contains("✗ s2") && l.contains("first failed: redirect") && l.contains("301")), "{err}");

    // The verdicts are kept with the instances: status reads them back, in natural order.
    let mut c = lab();
    c.args(["class", "status", "url-shortener", "--json"]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(0));
    let status = json(&out);
    let rows = status["students"].as_array().unwrap();
    assert_eq!(rows.iter().map(|r| r["student"].as_str().unwrap()).collect::<Vec<_>>(), ["s1", "s2", "s10"], "{status:#}");
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
    c.args(["class", "status", "url-shortener"]);
    let table = stdout(&run(c));
    let s2 = table.lines().find(|l| l.starts_with("s2 ")).unwrap_or_else(|| panic!("{table}"));
    assert!(s2.contains("running") && s2.contains("redirect"), "{table}");

    // Down asks first: with no terminal to ask on, it wants --yes.
    let mut c = lab();
    c.args(["class", "down", "url-shortener"]).stdin(std::process::Stdio::null());
    let out = run(c);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("add --yes"));
    let mut c = lab();
    c.args(["class", "down", "url-shortener", "--yes"]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("removed 3 student instances"), "{}", stdout(&out));
    for s in ["s1", "s2", "s10"] {
        assert_gone(&format!("lab-url-shortener--{s}"));
    }
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
