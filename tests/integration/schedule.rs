//! `voisin schedule`: the routine written as systemd units and cron lines
//! into temporary folders (`--dir`), never the machine's own; checked by
//! `systemd-analyze verify` and `crontab -n`, read back by `show`, and
//! removed without a trace.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::dns::example;
use crate::support::Voisin;

fn schedule(manifest: &Path, args: &[&str]) -> Voisin {
    Voisin::new(["-f"]).arg(manifest).arg("schedule").args(args)
}

fn listing(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("a folder")
        .map(|e| {
            let path = e.expect("an entry").path();
            let bytes = std::fs::read(&path).expect("readable");
            (path, bytes)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn systemd_units_pass_systemd_analyze_and_are_removed_without_a_trace() {
    let (dir, manifest) = example("full-association.yaml");
    let units = dir.path().join("units");
    std::fs::create_dir(&units).expect("a folder");
    std::fs::write(
        units.join("someone-else.service"),
        "[Service]\nExecStart=/bin/true\n",
    )
    .expect("written");
    let before = listing(&units);

    let run = schedule(&manifest, &["install", "--with", "systemd", "--dir"])
        .arg(&units)
        .run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let ours: Vec<PathBuf> = listing(&units)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("voisin-"))
        })
        .collect();
    let names: Vec<String> = ours
        .iter()
        .map(|p| {
            p.file_name()
                .expect("a name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        names,
        [
            "voisin-amis-quartier-backup.service",
            "voisin-amis-quartier-backup.timer",
            "voisin-amis-quartier-verify.service",
            "voisin-amis-quartier-verify.timer",
            "voisin-amis-quartier-watch.service",
            "voisin-amis-quartier-watch.timer",
        ]
    );
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .args(&ours)
        .output()
        .expect("systemd-analyze runs (Debian's `systemd` package)");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let timer = std::fs::read_to_string(units.join("voisin-amis-quartier-backup.timer"))
        .expect("the timer");
    assert!(
        timer.contains("OnCalendar=*-*-* 03:15:00 Europe/Paris\nPersistent=true"),
        "{timer}"
    );
    let service = std::fs::read_to_string(units.join("voisin-amis-quartier-backup.service"))
        .expect("the service");
    let exe = assert_cmd::cargo::cargo_bin("voisin");
    assert!(
        service.contains(&format!(
            "ExecStart={} -f {} --progress never schedule run backup",
            exe.display(),
            manifest.display()
        )),
        "{service}"
    );

    let show = schedule(&manifest, &["show", "--with", "systemd", "--dir"])
        .arg(&units)
        .run();
    assert_eq!(show.code, 0, "{}", show.stderr);
    assert!(
        show.stdout.contains("backup  *-*-* 03:15:00 Europe/Paris"),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout
            .contains("verify  Sun *-*-* 04:30:00 Europe/Paris"),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout.contains("watch   every 300s"),
        "{}",
        show.stdout
    );

    let run = schedule(&manifest, &["remove", "--with", "systemd", "--dir"])
        .arg(&units)
        .run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(listing(&units), before);
}

#[test]
fn the_units_follow_the_manifest_s_times() {
    let (dir, manifest) = example("full-association.yaml");
    let units = dir.path().join("units");
    let text = std::fs::read_to_string(&manifest).expect("the manifest");
    // The example's own times, changed.
    let changed = text
        .replace("backup_at: \"03:15\"", "backup_at: \"01:40\"")
        .replace(
            "verify_at: dim 04:30",
            "verify_at: wed 22:05\n  watch_every: 10m",
        );
    assert_ne!(changed, text, "the example sets its times");
    std::fs::write(&manifest, changed).expect("written");
    let run = schedule(&manifest, &["install", "--with", "systemd", "--dir"])
        .arg(&units)
        .run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let read = |name: &str| std::fs::read_to_string(units.join(name)).expect("a unit");
    assert!(
        read("voisin-amis-quartier-backup.timer")
            .contains("OnCalendar=*-*-* 01:40:00 Europe/Paris")
    );
    assert!(
        read("voisin-amis-quartier-verify.timer")
            .contains("OnCalendar=Wed *-*-* 22:05:00 Europe/Paris")
    );
    assert!(read("voisin-amis-quartier-watch.timer").contains("OnUnitActiveSec=600s"));
}

#[test]
fn cron_lines_pass_crontab_and_leave_the_user_s_own_lines() {
    let (dir, manifest) = example("full-association.yaml");
    let cron = dir.path().join("cron");
    std::fs::create_dir(&cron).expect("a folder");
    let own = "MAILTO=\"\"\n0 1 * * * /bin/true\n";
    std::fs::write(cron.join("crontab"), own).expect("written");

    // The machine on UTC, the association in Paris: times are converted.
    let run = schedule(&manifest, &["install", "--with", "cron", "--user", "--dir"])
        .arg(&cron)
        .env("TZ", "UTC")
        .run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("cron runs in this machine's time zone (UTC)"),
        "{}",
        run.stderr
    );
    let crontab = cron.join("crontab");
    let text = std::fs::read_to_string(&crontab).expect("the crontab");
    assert!(text.starts_with(own), "{text}");
    let check = Command::new("crontab")
        .arg("-n")
        .arg(&crontab)
        .output()
        .expect("crontab runs (Debian's `cron` package)");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let backup = text
        .lines()
        .find(|l| l.ends_with("| logger -t voisin-amis-quartier-backup"))
        .expect("a backup line");
    // 03:15 in Paris is 02:15 UTC in winter, 01:15 in summer.
    assert!(
        backup.starts_with("15 2 * * * ") || backup.starts_with("15 1 * * * "),
        "{backup}"
    );
    assert!(text.contains("*/5 * * * * "), "{text}");

    let show = schedule(&manifest, &["show", "--with", "cron", "--user", "--dir"])
        .arg(&cron)
        .run();
    assert_eq!(show.code, 0, "{}", show.stderr);
    assert!(
        show.stdout.contains("watch   */5 * * * *"),
        "{}",
        show.stdout
    );

    let run = schedule(&manifest, &["remove", "--with", "cron", "--user", "--dir"])
        .arg(&cron)
        .run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&crontab).expect("the crontab"), own);

    // The system form, for /etc/cron.d, carries the user field.
    let run = schedule(&manifest, &["install", "--with", "cron", "--dir"])
        .arg(&cron)
        .env("TZ", "Europe/Paris")
        .run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let file = std::fs::read_to_string(cron.join("voisin-amis-quartier")).expect("the cron.d file");
    assert!(file.contains("\n15 3 * * * root "), "{file}");
    let run = schedule(&manifest, &["remove", "--with", "cron", "--dir"])
        .arg(&cron)
        .run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!cron.join("voisin-amis-quartier").exists());
}

#[test]
fn dry_run_prints_the_units_and_writes_nothing() {
    let (dir, manifest) = example("full-association.yaml");
    let units = dir.path().join("units");
    let run = schedule(
        &manifest,
        &["install", "--dry-run", "--with", "systemd", "--dir"],
    )
    .arg(&units)
    .run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("[Timer]\nOnCalendar=*-*-* 03:15:00 Europe/Paris"),
        "{}",
        run.stdout
    );
    assert!(!units.exists());
}

#[test]
fn a_scheduled_run_records_its_start_end_and_exit_code() {
    let (dir, manifest) = example("full-association.yaml");
    // The password file does not exist: the backup fails, as it would at night.
    let run = schedule(&manifest, &["run", "backup"])
        .env_remove("VOISIN_BACKUP_PASSWORD")
        .run();
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot read the backup password file"),
        "{}",
        run.stderr
    );
    let runs = voisin::schedule::last_runs(&dir.path().join(".voisin"));
    let backup = &runs["backup"];
    assert_eq!(backup.exit_code, Some(2));
    assert_eq!(backup.failed.as_deref(), Some("backup"));
    let ended = backup.ended.as_deref().expect("an end");
    assert!(ended >= backup.started.as_str());
    assert!(!runs.contains_key("verify"));

    let show = schedule(&manifest, &["show", "--with", "cron", "--dir"])
        .arg(dir.path())
        .run();
    assert!(
        show.stdout
            .contains("failed (exit code 2, in `voisin backup`)"),
        "{}",
        show.stdout
    );
}
