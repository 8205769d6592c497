//! Deploying for real: the quickstart on the machine's Docker engine, signed
//! into over HTTP, deployed again with nothing to do, and taken down.

use std::process::Command;

use super::support::{Voisin, root};

/// The engine's containers, networks and volumes labelled for `domain`.
pub fn labelled(domain: &str) -> Vec<String> {
    let filter = format!("label=voisin.association={domain}");
    let mut all = Vec::new();
    for args in [
        vec![
            "ps",
            "-a",
            "--filter",
            &filter,
            "--format",
            "container {{.Names}}",
        ],
        vec![
            "network",
            "ls",
            "--filter",
            &filter,
            "--format",
            "network {{.Name}}",
        ],
        vec![
            "volume",
            "ls",
            "--filter",
            &filter,
            "--format",
            "volume {{.Name}}",
        ],
    ] {
        let out = Command::new("docker")
            .args(&args)
            .output()
            .expect("the docker CLI runs");
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        all.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string),
        );
    }
    all
}

/// curl with a cookie jar, returning (status, body).
pub(super) fn curl(jar: &std::path::Path, args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-S", "-b"])
        .arg(jar)
        .arg("-c")
        .arg(jar)
        .args(["-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl runs (scripts/test installs it)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').expect("a status line");
    (code.trim().parse().expect("a status"), body.to_string())
}

pub(super) fn cookie(jar: &std::path::Path, name: &str) -> String {
    std::fs::read_to_string(jar)
        .expect("cookie jar")
        .lines()
        .find_map(|l| {
            let fields: Vec<&str> = l.split('\t').collect();
            (fields.len() == 7 && fields[5] == name).then(|| fields[6].to_string())
        })
        .unwrap_or_else(|| panic!("no `{name}` cookie"))
}

#[test]
fn the_quickstart_deploys_serves_the_board_redeploys_as_a_no_op_and_comes_down_clean() {
    // The quickstart as it is, under another name and port: a trial the
    // developer runs from the README (on 8080) is never touched.
    let work = tempfile::tempdir().expect("temp dir");
    let manifest = work.path().join("voisin.yaml");
    let text = std::fs::read_to_string(root().join("examples/quickstart.yaml"))
        .expect("the quickstart")
        .replace("quickstart.localhost", "quickstart-test.localhost")
        .replace("port: 8080", "port: 18090");
    assert!(
        text.contains("port: 18090"),
        "the quickstart names its port"
    );
    std::fs::write(&manifest, text).expect("writes the copy");

    let first = Voisin::new(["deploy", "--progress", "never", "-f"])
        .arg(&manifest)
        .run();
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    assert!(
        first.stdout.contains("board: http://127.0.0.1:18090"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("members credentials admin"),
        "{}",
        first.stdout
    );

    // Sign in with the handed-over password and offer something.
    let password = Voisin::new(["members", "credentials", "admin", "-f"])
        .arg(&manifest)
        .run();
    assert_eq!(password.code, 0, "{}", password.stderr);
    let password = password
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("initial password:"))
        .map_or_else(
            || panic!("a password line in:\n{}", password.stdout),
            |p| p.trim().to_string(),
        );
    let dir = tempfile::tempdir().expect("temp dir");
    let jar = dir.path().join("cookies");
    let (code, _) = curl(&jar, &["http://127.0.0.1:18090/signin"]);
    assert_eq!(code, 200);
    let csrf = cookie(&jar, "voisin_csrf");
    let (code, _) = curl(
        &jar,
        &[
            "--data-urlencode",
            "login=admin",
            "--data-urlencode",
            &format!("password={password}"),
            "--data-urlencode",
            &format!("csrf={csrf}"),
            "http://127.0.0.1:18090/signin",
        ],
    );
    assert_eq!(code, 303, "the handed-over password signs the admin in");
    // Signing in gives a new token.
    let csrf = cookie(&jar, "voisin_csrf");
    let (code, _) = curl(
        &jar,
        &[
            "-F",
            &format!("csrf={csrf}"),
            "-F",
            "kind=item",
            "-F",
            "category=tools",
            "-F",
            "title=A drill from the quickstart",
            "-F",
            "description=Ask me",
            "http://127.0.0.1:18090/offers",
        ],
    );
    assert_eq!(code, 303, "the offer is created");
    let (code, page) = curl(&jar, &["http://127.0.0.1:18090/offers"]);
    assert_eq!(code, 200);
    assert!(page.contains("A drill from the quickstart"), "{page}");

    // Nothing changed: nothing is done, not a single mutating call.
    let again = Voisin::new(["deploy", "--format", "json", "-f"])
        .arg(&manifest)
        .run();
    assert_eq!(again.code, 0, "{}", again.stderr);
    let json = again.json();
    assert_eq!(json["engine_calls"]["writes"], 0, "{json:#}");
    assert_eq!(json["summary"]["created"], 0);

    let down = Voisin::new(["down", "--volumes", "--yes", "-f"])
        .arg(&manifest)
        .run();
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert_eq!(
        labelled("quickstart-test.localhost"),
        Vec::<String>::new(),
        "down leaves nothing labelled"
    );
}
