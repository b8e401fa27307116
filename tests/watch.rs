//! `lab verify --watch`: a save of the solution builds and checks again with
//! the lab kept up, the run says which checks changed, and Ctrl-C leaves
//! nothing running.

mod common;

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

/// Lines of the child's stdout until one holds `want` (or the time is up).
fn wait_for(lines: &mpsc::Receiver<String>, seen: &mut Vec<String>, want: &str, within: Duration) -> bool {
    let end = Instant::now() + within;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(l) => {
                let hit = l.contains(want);
                seen.push(l);
                if hit {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
    false
}

#[test]
fn a_save_from_failing_to_passing_turns_the_check_green_and_ctrl_c_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shortener");
    // The learner's mistake: redirects answer 301.
    shortener_with_bug(&dir, "redirect-301");
    let _down = Down("url-shortener", Some("watch"));
    let mut child = lab()
        .args(["verify", "url-shortener", "--student", "watch", "--check", "redirect", "--watch", "--solution"])
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    assert!(wait_for(&rx, &mut seen, "✗ redirect", Duration::from_secs(180)), "the first run did not fail redirect:\n{}", seen.join("\n"));
    assert!(wait_for(&rx, &mut seen, "watching", Duration::from_secs(60)), "{}", seen.join("\n"));
    assert!(!seen.iter().any(|l| l.contains("kept lab-url-shortener")), "watch keeps the lab itself, silently:\n{}", seen.join("\n"));

    // The fix, saved: the file back as the reference has it.
    let main = std::fs::read_to_string(shortener().join("main.go")).unwrap();
    std::fs::write(dir.join("main.go"), main).unwrap();
    assert!(wait_for(&rx, &mut seen, "main.go changed", Duration::from_secs(30)), "the save was not seen:\n{}", seen.join("\n"));
    assert!(wait_for(&rx, &mut seen, "✓ redirect", Duration::from_secs(180)), "the second run did not pass redirect:\n{}", seen.join("\n"));
    assert!(wait_for(&rx, &mut seen, "redirect: failed → passed", Duration::from_secs(30)), "the run does not say what changed:\n{}", seen.join("\n"));
    assert!(wait_for(&rx, &mut seen, "watching", Duration::from_secs(30)), "{}", seen.join("\n"));
    // Between runs the lab stays up.
    assert!(!docker_names("container", "label=lab.instance=lab-url-shortener--watch").is_empty(), "the lab is kept up between runs");
    // Nothing but saves sets a run off (the build reads every file).
    assert!(!wait_for(&rx, &mut seen, "changed: building", Duration::from_secs(3)), "a run without a save:\n{}", seen.join("\n"));

    interrupt(&child);
    let began = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(began.elapsed() < Duration::from_secs(60), "watch did not stop on Ctrl-C");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(130), "{}", seen.join("\n"));
    assert_gone("lab-url-shortener--watch");
}
