//! The routine as systemd units: per job a `oneshot` service that runs
//! `voisin schedule run JOB`, and a timer that starts it. Calendar times
//! carry the association's zone (`OnCalendar=… Europe/Paris`, systemd ≥
//! 235), so they follow its daylight saving time whatever the machine's zone.

use std::fmt::Write as _;

use super::{DAY_NAMES, Job, Routine, When, clock};

/// The name of a job's units, without `.service` / `.timer`.
pub fn unit_name(slug: &str, job: Job) -> String {
    format!("voisin-{slug}-{}", job.name())
}

/// True for the name of a unit file voisin writes for `slug`.
pub fn is_ours(slug: &str, file_name: &str) -> bool {
    let Some(rest) = file_name.strip_prefix(&format!("voisin-{slug}-")) else {
        return false;
    };
    let job = rest
        .strip_suffix(".service")
        .or_else(|| rest.strip_suffix(".timer"));
    job.is_some_and(|j| Job::parse(j).is_some())
}

/// Quotes a word for an `ExecStart=` line: systemd splits on blanks and
/// reads `"…"` with C-style escapes; `%` starts a specifier and `$` a variable.
fn quote(word: &str) -> String {
    let escaped = word.replace('%', "%%").replace('$', "$$");
    if escaped
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/-_.,:=+@".contains(c))
    {
        escaped
    } else {
        format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// Every unit file of the routine: (file name, content). `user` units run
/// as the user who installs them; system units run as root.
pub fn units(routine: &Routine) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for &(job, when) in &routine.jobs {
        let name = unit_name(&routine.slug, job);
        let mut service = String::new();
        let _ = writeln!(
            service,
            "{}\n# `voisin schedule remove` removes it.\n",
            routine.marker()
        );
        let _ = writeln!(
            service,
            "[Unit]\nDescription=voisin: {} of {}\n\
             After=docker.service network-online.target\n\
             Wants=network-online.target\n",
            job.summary(),
            routine.domain
        );
        let exec: Vec<String> = routine.command(job).iter().map(|w| quote(w)).collect();
        let dir = routine
            .manifest
            .parent()
            .map_or_else(|| "/".into(), |d| d.display().to_string());
        let _ = writeln!(
            service,
            "[Service]\nType=oneshot\nExecStart={}\nWorkingDirectory={}\n\
             StandardInput=null\nSyslogIdentifier={name}",
            exec.join(" "),
            quote(&dir),
        );
        if job.uses_repository() {
            // Backups read and write a lot: let members' requests go first.
            let _ = writeln!(service, "Nice=10\nIOSchedulingClass=idle");
        }
        files.push((format!("{name}.service"), service));

        let mut timer = String::new();
        let _ = writeln!(
            timer,
            "{}\n# `voisin schedule remove` removes it.\n",
            routine.marker()
        );
        let _ = writeln!(
            timer,
            "[Unit]\nDescription=voisin: {} of {}, {}\n\n[Timer]",
            job.summary(),
            routine.domain,
            when.describe(&routine.timezone)
        );
        match when {
            When::Daily { hour, minute } => {
                let _ = writeln!(
                    timer,
                    "OnCalendar=*-*-* {}:00 {}\nPersistent=true",
                    clock(hour, minute),
                    routine.timezone
                );
            }
            When::Weekly { day, hour, minute } => {
                let _ = writeln!(
                    timer,
                    "OnCalendar={} *-*-* {}:00 {}\nPersistent=true",
                    DAY_NAMES[usize::from(day % 7)],
                    clock(hour, minute),
                    routine.timezone
                );
            }
            When::Every(every) => {
                // A minute after the timer starts (at boot, or at install),
                // then `every` after each run began.
                let _ = writeln!(
                    timer,
                    "OnActiveSec=1min\nOnUnitActiveSec={}s",
                    every.as_secs()
                );
            }
        }
        let _ = writeln!(
            timer,
            "Unit={name}.service\n\n[Install]\nWantedBy=timers.target"
        );
        files.push((format!("{name}.timer"), timer));
    }
    files
}

/// The schedule a timer file says, in its own words (`OnCalendar=` or
/// `OnUnitActiveSec=`), for `show`.
pub fn timer_schedule(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("OnCalendar="))
        .map(str::to_string)
        .or_else(|| {
            text.lines()
                .find_map(|l| l.strip_prefix("OnUnitActiveSec="))
                .map(|s| format!("every {s}"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_words_are_quoted_only_when_needed() {
        assert_eq!(quote("/usr/bin/voisin"), "/usr/bin/voisin");
        assert_eq!(
            quote("/srv/les amis/voisin.yaml"),
            "\"/srv/les amis/voisin.yaml\""
        );
        assert_eq!(quote("/srv/100%"), "\"/srv/100%%\"");
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
    }

    #[test]
    fn only_our_unit_names_are_ours() {
        assert!(is_ours("amis", "voisin-amis-backup.timer"));
        assert!(is_ours("amis", "voisin-amis-watch.service"));
        assert!(!is_ours("amis", "voisin-amis-quartier-backup.timer"));
        assert!(!is_ours("amis", "voisin-amis-backup.timer.bak"));
        assert!(!is_ours("amis", "docker.service"));
    }
}
