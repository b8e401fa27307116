//! A class: one instance of a lab per student of a roster, and what their
//! last `lab verify` said (kept with the instance by the backend, so another
//! machine sees it).

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One student of a roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Student {
    /// The id: the instance's `--student` name.
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    /// Where their solution is: a folder or archive (relative paths are
    /// taken from the roster's folder), given as `solution` in the roster.
    pub solution: Option<PathBuf>,
    /// Or an image their CI pushed, or a URL of a service they run.
    pub image: Option<String>,
    pub target: Option<String>,
    /// Or their git repository (a URL git clones, `URL#BRANCH` for a branch),
    /// fetched into lab's cache before each run.
    pub git: Option<String>,
    /// The roster line (1-based) the student is on.
    pub line: usize,
}

/// A roster that could not be read: where, what, and how to fix it.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{file}:{line}: {message}")]
#[diagnostic(code(lab::roster))]
pub struct RosterError {
    pub file: String,
    pub line: usize,
    pub message: String,
    #[help]
    pub hint: String,
}

const CSV_HINT: &str =
    "a roster is CSV with the columns id,name and optionally email,solution,image,target,git (a header line naming them is allowed), or YAML: a list of {id, name, email, solution, image, target, git}";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlStudent {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    solution: Option<PathBuf>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    git: Option<String>,
}

/// Reads a roster file: YAML when it ends in .yaml/.yml, CSV otherwise.
pub fn read_roster(path: &Path) -> Result<Vec<Student>, RosterError> {
    let file = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| RosterError { file: file.clone(), line: 0, message: format!("cannot be read: {e}"), hint: "give the path of the class's roster file".into() })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let yaml = matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
    let mut students = if yaml { parse_yaml(&file, &text)? } else { parse_csv(&file, &text)? };
    for s in &mut students {
        if let Some(p) = &s.solution {
            if p.is_relative() {
                s.solution = Some(base.join(p));
            }
        }
    }
    check(&file, &students)?;
    students.sort_by(|a, b| natural(&a.id, &b.id));
    Ok(students)
}

fn parse_yaml(file: &str, text: &str) -> Result<Vec<Student>, RosterError> {
    let list: Vec<serde_yaml::Value> = serde_yaml::from_str(text).map_err(|e| RosterError {
        file: file.into(),
        line: e.location().map_or(0, |l| l.line()),
        message: format!("not a YAML list of students: {e}"),
        hint: CSV_HINT.into(),
    })?;
    // Each entry's line: the n-th `- ` at the start of a line.
    let starts: Vec<usize> = text.lines().enumerate().filter(|(_, l)| l.starts_with("- ")).map(|(i, _)| i + 1).collect();
    list.into_iter()
        .enumerate()
        .map(|(i, v)| {
            let line = starts.get(i).copied().unwrap_or(0);
            let s: YamlStudent = serde_yaml::from_value(v).map_err(|e| RosterError { file: file.into(), line, message: format!("student {}: {e}", i + 1), hint: CSV_HINT.into() })?;
            Ok(Student { name: s.name.unwrap_or_else(|| s.id.clone()), id: s.id, email: s.email, solution: s.solution, image: s.image, target: s.target, git: s.git, line })
        })
        .collect()
}

fn parse_csv(file: &str, text: &str) -> Result<Vec<Student>, RosterError> {
    let mut columns: Vec<String> = ["id", "name", "email"].map(String::from).to_vec();
    let mut out = Vec::new();
    // Line by line (a roster has no line breaks inside a field), so each
    // student's line number is exact; csv reads the quoting of each.
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() || raw.trim_start().starts_with('#') {
            continue;
        }
        let mut r = csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(csv::Trim::All).from_reader(raw.as_bytes());
        let rec = match r.records().next() {
            Some(Ok(rec)) => rec,
            Some(Err(e)) => return Err(RosterError { file: file.into(), line, message: format!("not CSV: {e}"), hint: CSV_HINT.into() }),
            None => continue,
        };
        let fields: Vec<&str> = rec.iter().collect();
        if fields.iter().all(|f| f.is_empty()) {
            continue;
        }
        // A header line names the columns.
        if out.is_empty() && matches!(fields[0].to_ascii_lowercase().as_str(), "id" | "student" | "student id" | "student_id") {
            columns = fields.iter().map(|f| f.to_ascii_lowercase()).collect();
            columns[0] = "id".into();
            if let Some(bad) = columns.iter().find(|c| !["id", "name", "email", "solution", "image", "target", "git"].contains(&c.as_str())) {
                return Err(RosterError { file: file.into(), line, message: format!("unknown column `{bad}`"), hint: CSV_HINT.into() });
            }
            continue;
        }
        if fields.len() > columns.len() {
            return Err(RosterError {
                file: file.into(),
                line,
                message: format!("{} fields, but the roster has {} columns ({})", fields.len(), columns.len(), columns.join(",")),
                hint: CSV_HINT.into(),
            });
        }
        let get = |c: &str| columns.iter().position(|x| x == c).and_then(|k| fields.get(k)).map(|s| s.to_string()).filter(|s| !s.is_empty());
        let id = get("id").unwrap_or_default();
        out.push(Student {
            name: get("name").unwrap_or_else(|| id.clone()),
            id,
            email: get("email"),
            solution: get("solution").map(PathBuf::from),
            image: get("image"),
            target: get("target"),
            git: get("git"),
            line,
        });
    }
    Ok(out)
}

fn check(file: &str, students: &[Student]) -> Result<(), RosterError> {
    if students.is_empty() {
        return Err(RosterError { file: file.into(), line: 0, message: "no students".into(), hint: CSV_HINT.into() });
    }
    for (i, s) in students.iter().enumerate() {
        if !crate::plan::valid_student(&s.id) {
            return Err(RosterError {
                file: file.into(),
                line: s.line,
                message: format!("student id {:?} cannot name an instance", s.id),
                hint: "an id is lower-case letters and digits with single dashes between them, at most 30 (it becomes the instance's --student name); put the full name in the name column".into(),
            });
        }
        if let Some(o) = students[..i].iter().find(|o| o.id == s.id) {
            return Err(RosterError { file: file.into(), line: s.line, message: format!("student id {} is on line {} too", s.id, o.line), hint: "each student needs an id of their own".into() });
        }
        if [s.solution.is_some(), s.image.is_some(), s.target.is_some(), s.git.is_some()].iter().filter(|x| **x).count() > 1 {
            return Err(RosterError {
                file: file.into(),
                line: s.line,
                message: format!("student {} has more than one of solution, image, target and git", s.id),
                hint: "give one way to reach each student's service".into(),
            });
        }
    }
    Ok(())
}

/// Fetches a student's repository (`URL` or `URL#BRANCH`) into lab's cache
/// and returns the folder: cloned (shallow) the first time, then fetched and
/// reset to what the remote has, so each run sees the latest push and nothing
/// of the previous build. Never asks for a password.
pub fn fetch_git(spec: &str) -> Result<PathBuf, String> {
    let (url, branch) = match spec.rsplit_once('#') {
        Some((u, b)) if !b.is_empty() => (u, Some(b)),
        _ => (spec.trim_end_matches('#'), None),
    };
    let dir = crate::build::cache_dir().join("class-git").join(crate::build::short_digest(spec.as_bytes()));
    let git = |args: &[&str], cwd: Option<&Path>| -> Result<(), String> {
        let mut c = std::process::Command::new("git");
        if let Some(d) = cwd {
            c.current_dir(d);
        }
        let out = c.args(args).env("GIT_TERMINAL_PROMPT", "0").env("GIT_ASKPASS", "true").stdin(std::process::Stdio::null()).output().map_err(|e| format!("git cannot be run: {e}; install git"))?;
        if out.status.success() {
            Ok(())
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or("no message");
            Err(format!("git {} {url}: {last}", args[0]))
        }
    };
    if dir.join(".git").is_dir() {
        let what = branch.unwrap_or("HEAD");
        git(&["fetch", "--depth", "1", "origin", what], Some(&dir))?;
        git(&["reset", "--hard", "--quiet", "FETCH_HEAD"], Some(&dir))?;
        git(&["clean", "-fdxq"], Some(&dir))?;
    } else {
        std::fs::create_dir_all(dir.parent().expect("a parent")).map_err(|e| format!("{}: {e}", dir.display()))?;
        let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let t = tmp.display().to_string();
        let mut args = vec!["clone", "--depth", "1", "--quiet"];
        if let Some(b) = branch {
            args.extend(["--branch", b]);
        }
        args.extend([url, t.as_str()]);
        let res = git(&args, None);
        if let Err(e) = res {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        if std::fs::rename(&tmp, &dir).is_err() {
            // Another run cloned it meanwhile.
            let _ = std::fs::remove_dir_all(&tmp);
        }
    }
    Ok(dir)
}

/// The token that opens one student's own row of the class board: derived
/// from their instance's secret, so only whoever was given it (their
/// credentials) and lab, which reads the secret from the backend, know it.
pub fn board_token(secret: &str) -> String {
    crate::plan::derive_token("lab class board", secret)[..32].to_string()
}

/// Whether two tokens are equal, in a time that does not tell how much of
/// them matched.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Natural order: `s2` before `s10`.
pub fn natural(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return a.cmp(b),
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(p), Some(q)) if p.is_ascii_digit() && q.is_ascii_digit() => {
                let n = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let m = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let (dx, dy) = (std::str::from_utf8(&x[..n]).unwrap().trim_start_matches('0'), std::str::from_utf8(&y[..m]).unwrap().trim_start_matches('0'));
                let o = dx.len().cmp(&dy.len()).then_with(|| dx.cmp(dy));
                if o != Ordering::Equal {
                    return o;
                }
                x = &x[n..];
                y = &y[m..];
            }
            (Some(p), Some(q)) => {
                if p != q {
                    return p.cmp(q);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

/// What a student's last `lab verify` said, as the backend keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub instance: String,
    pub lab: String,
    pub student: String,
    /// When it finished (seconds since the epoch).
    pub at: u64,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub errors: usize,
    /// The first check that failed (or could not run), with its summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Each check and its status, in order.
    pub checks: Vec<CheckMark>,
}

/// One check of a verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckMark {
    pub name: String,
    /// passed, failed, skipped or error.
    pub status: String,
    /// A failed check's failure (each excerpted), or why a check did not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub got: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Verdict {
    /// From `lab verify --output json`'s report.
    pub fn from_report(instance: &str, lab: &str, student: &str, at: u64, report: &serde_json::Value) -> Verdict {
        let n = |k: &str| report["summary"][k].as_u64().unwrap_or(0) as usize;
        let text = |c: &serde_json::Value, k: &str, max: usize| c[k].as_str().filter(|s| !s.is_empty()).map(|s| crate::probe::excerpt(s, max));
        let checks: Vec<CheckMark> = report["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| CheckMark {
                name: c["name"].as_str().unwrap_or("").to_string(),
                status: c["status"].as_str().unwrap_or("").to_string(),
                summary: text(c, "summary", 400).or_else(|| text(c, "message", 400)).or_else(|| text(c, "reason", 400)),
                expected: text(c, "expected", 400),
                sent: text(c, "sent", 400),
                got: text(c, "got", 600),
                hint: text(c, "hint", 400),
            })
            .collect();
        let first = report["checks"].as_array().into_iter().flatten().find(|c| matches!(c["status"].as_str(), Some("failed" | "error")));
        Verdict {
            instance: instance.into(),
            lab: lab.into(),
            student: student.into(),
            at,
            passed: n("passed"),
            failed: n("failed"),
            skipped: n("skipped"),
            errors: n("errors"),
            first_failed: first.and_then(|c| c["name"].as_str()).map(String::from),
            summary: first.and_then(|c| c["summary"].as_str().or(c["message"].as_str())).map(|s| crate::probe::excerpt(s, 300)),
            checks,
        }
    }

    pub fn green(&self) -> bool {
        self.failed == 0 && self.errors == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roster(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(name);
        std::fs::write(&p, text).unwrap();
        (d, p)
    }

    #[test]
    fn natural_order_puts_s2_before_s10() {
        let mut ids = vec!["s10", "s2", "s1", "b", "s02x", "a10b2", "a10b10"];
        ids.sort_by(|a, b| natural(a, b));
        assert_eq!(ids, ["a10b2", "a10b10", "b", "s1", "s2", "s02x", "s10"]);
    }

    #[test]
    fn a_csv_roster_with_or_without_a_header_is_read_in_natural_order() {
        let (d, p) = roster("class.csv", "id,name,email,solution\ns10,Ten,,sol/ten\n# a comment\n\ns2,\"Two, Jr.\",two@example.org,\n");
        let s = read_roster(&p).unwrap();
        assert_eq!(s.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["s2", "s10"]);
        assert_eq!(s[0].name, "Two, Jr.");
        assert_eq!(s[0].email.as_deref(), Some("two@example.org"));
        assert_eq!(s[1].solution.as_deref(), Some(d.path().join("sol/ten").as_path()));
        assert_eq!((s[0].line, s[1].line), (5, 2));
        let (_d, p) = roster("class.csv", "alice,Alice A\nbob\n");
        let s = read_roster(&p).unwrap();
        assert_eq!((s[0].name.as_str(), s[1].name.as_str()), ("Alice A", "bob"));
    }

    #[test]
    fn a_yaml_roster_is_read_too() {
        let (_d, p) = roster("class.yaml", "- id: s1\n  name: One\n  image: reg:5000/s1:v1\n- id: s3\n  target: http://127.0.0.1:9\n");
        let s = read_roster(&p).unwrap();
        assert_eq!(s[0].image.as_deref(), Some("reg:5000/s1:v1"));
        assert_eq!((s[1].name.as_str(), s[1].line), ("s3", 4));
        let (_d, p) = roster("class.yaml", "- id: s1\n- id: s2\n  nmae: x\n");
        let e = read_roster(&p).unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("nmae"), "{e}");
    }

    #[test]
    fn bad_rosters_say_which_line_and_how_to_fix_it() {
        let cases = [
            ("id,name\ns1,A\nS 2,B\n", 3, "cannot name an instance"),
            ("s1,A\ns2,B\ns1,C\n", 3, "s1 is on line 1 too"),
            ("id,name,phone\ns1,A,1\n", 1, "unknown column `phone`"),
            ("s1,A,a@b,extra\n", 1, "4 fields, but the roster has 3 columns"),
            ("id,name,solution,image\ns1,A,dir,img\n", 2, "more than one of solution, image, target and git"),
            ("id,solution,git\ns1,dir,https://example.org/s1.git\n", 2, "more than one of solution, image, target and git"),
            ("# nobody\n", 0, "no students"),
        ];
        for (text, line, words) in cases {
            let (_d, p) = roster("r.csv", text);
            let e = read_roster(&p).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.to_string().contains(words), "{text:?}: {e}");
            assert!(!e.hint.is_empty());
        }
    }

    #[test]
    fn a_verdict_names_the_first_failed_check() {
        let report = serde_json::json!({"checks": [
            {"name": "a", "status": "passed"},
            {"name": "b", "status": "failed", "summary": "got 404; expected 200"},
            {"name": "c", "status": "skipped"}],
            "summary": {"passed": 1, "failed": 1, "skipped": 1, "errors": 0}});
        let v = Verdict::from_report("lab-x--s1", "x", "s1", 7, &report);
        assert_eq!((v.first_failed.as_deref(), v.summary.as_deref(), v.green()), (Some("b"), Some("got 404; expected 200"), false));
        assert_eq!(v.checks.len(), 3);
    }
}
