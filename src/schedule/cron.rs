//! The routine as cron lines, where systemd does not run. Debian's cron
//! has no `CRON_TZ`: its times are the machine's. So the association's
//! times are converted into the machine's zone when they differ, for the
//! offsets of the day of installation; the block says so, and
//! [`Converted::shifts`] tells the command to warn that a daylight saving
//! change in one zone and not the other moves the jobs by an hour until
//! `schedule install` runs again.
//!
//! Output goes to syslog through `logger -t voisin-SLUG-JOB`.

use std::fmt::Write as _;

use chrono::{Datelike as _, NaiveDate, NaiveTime, TimeZone as _, Timelike as _, Weekday};
use chrono_tz::Tz;

use super::{Routine, When, systemd::unit_name};

/// The end of a block in a user's crontab, after which other lines are
/// the user's own.
pub fn end_marker(routine: &Routine) -> String {
    format!(
        "# End of `voisin schedule install` for {}",
        routine.manifest.display()
    )
}

/// The machine's time zone, as cron sees it: `TZ`, else `/etc/timezone`,
/// else the zone `/etc/localtime` links to, else UTC.
pub fn system_zone() -> String {
    if let Ok(tz) = std::env::var("TZ") {
        let tz = tz.trim_start_matches(':');
        if tz.parse::<Tz>().is_ok() {
            return tz.to_string();
        }
    }
    if let Ok(text) = std::fs::read_to_string("/etc/timezone")
        && text.trim().parse::<Tz>().is_ok()
    {
        return text.trim().to_string();
    }
    if let Ok(target) = std::fs::read_link("/etc/localtime") {
        let text = target.display().to_string();
        if let Some((_, zone)) = text.split_once("zoneinfo/")
            && zone.parse::<Tz>().is_ok()
        {
            return zone.to_string();
        }
    }
    "UTC".to_string()
}

/// The routine's times in the machine's zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    /// The machine's zone.
    pub system: String,
    /// Whether the association's times were converted: its zone differs
    /// from the machine's, so a daylight saving change in one and not the
    /// other shifts them by an hour until the next install.
    pub shifts: bool,
}

/// `(day of week 0 = Sunday as cron counts, hour, minute)` in `system` for
/// `hour:minute` in `zone` on `date` (which falls on the wanted weekday).
fn convert(date: NaiveDate, hour: u8, minute: u8, zone: Tz, system: Tz) -> (u32, u32, u32) {
    let time = NaiveTime::from_hms_opt(u32::from(hour), u32::from(minute), 0).unwrap_or_default();
    let local = date.and_time(time);
    // A time that does not exist that day (skipped by daylight saving) is
    // taken an hour later, as systemd does.
    let at = zone.from_local_datetime(&local).earliest().or_else(|| {
        zone.from_local_datetime(&(local + chrono::Duration::hours(1)))
            .earliest()
    });
    let Some(at) = at else {
        return (
            date.weekday().num_days_from_sunday(),
            u32::from(hour),
            u32::from(minute),
        );
    };
    let there = at.with_timezone(&system);
    (
        there.weekday().num_days_from_sunday(),
        there.hour(),
        there.minute(),
    )
}

/// The cron lines of the routine, as a block: with the user field for
/// `/etc/cron.d` (`system`), without for a user's crontab. `today` is the
/// date whose offsets convert the times.
pub fn block(
    routine: &Routine,
    system_form: bool,
    system: &str,
    today: NaiveDate,
) -> (String, Converted) {
    let zone: Tz = routine.timezone.parse().unwrap_or(Tz::UTC);
    let machine: Tz = system.parse().unwrap_or(Tz::UTC);
    let same = zone == machine || same_rules(zone, machine, today);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}\n# `voisin schedule remove` removes it.",
        routine.marker()
    );
    if same {
        let _ = writeln!(
            out,
            "# Times are the association's ({}), which is this machine's zone too.",
            routine.timezone
        );
    } else {
        let _ = writeln!(
            out,
            "# Times are this machine's zone ({system}), converted from the association's\n\
             # ({}) on {today}: run `voisin schedule install` again after a daylight\n\
             # saving change, or set the machine's zone to the association's.",
            routine.timezone
        );
    }
    if system_form {
        let _ = writeln!(
            out,
            "SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        );
    }
    let user = if system_form { " root" } else { "" };
    for &(job, when) in &routine.jobs {
        let fields = match when {
            When::Daily { hour, minute } => {
                let (_, h, m) = convert(today, hour, minute, zone, machine);
                format!("{m} {h} * * *")
            }
            When::Weekly { day, hour, minute } => {
                // The next such weekday, so the conversion uses its offsets.
                let wanted = Weekday::try_from(day % 7).unwrap_or(Weekday::Sun);
                let mut date = today;
                while date.weekday() != wanted {
                    date = date.succ_opt().unwrap_or(date);
                }
                let (d, h, m) = convert(date, hour, minute, zone, machine);
                format!("{m} {h} * * {d}")
            }
            When::Every(every) => every_fields(every.as_secs()),
        };
        let command: Vec<String> = routine
            .command(job)
            .iter()
            .map(|w| shell_quote(w))
            .collect();
        let _ = writeln!(
            out,
            "# {}, {}\n{fields}{user} {} 2>&1 | logger -t {}",
            job.summary(),
            when.describe(&routine.timezone),
            command.join(" "),
            unit_name(&routine.slug, job)
        );
    }
    if !system_form {
        let _ = writeln!(out, "{}", end_marker(routine));
    }
    (
        out,
        Converted {
            system: system.to_string(),
            shifts: !same,
        },
    )
}

/// Whether two zones keep the same offset all year round (`Europe/Paris`
/// and `Europe/Brussels`): then no conversion is needed.
fn same_rules(a: Tz, b: Tz, today: NaiveDate) -> bool {
    use chrono::Offset as _;
    (0..53).all(|week| {
        let date = today + chrono::Duration::weeks(week);
        let noon = date.and_hms_opt(12, 0, 0).unwrap_or_default();
        let offset = |z: Tz| z.from_utc_datetime(&noon).offset().fix().local_minus_utc();
        offset(a) == offset(b)
    })
}

/// The five time fields for "every `secs` seconds", as near as cron can:
/// minutes that divide the hour, hours that divide the day, else days.
fn every_fields(secs: u64) -> String {
    let minutes = (secs / 60).max(1);
    if minutes < 60 {
        format!("*/{minutes} * * * *")
    } else if minutes < 24 * 60 {
        format!("0 */{} * * *", minutes / 60)
    } else {
        format!("0 0 */{} * *", (minutes / (24 * 60)).min(31))
    }
}

/// A word for `/bin/sh`: single-quoted unless plain. `%` is cron's newline
/// and must be escaped even inside quotes.
fn shell_quote(word: &str) -> String {
    let plain = word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/-_.,:=+@".contains(c));
    let quoted = if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    };
    quoted.replace('%', "\\%")
}

/// `crontab` with the block for `routine` put in place of any earlier one
/// (or removed, when `block` is `None`); other lines are kept as they are.
pub fn merge(crontab: &str, routine: &Routine, block: Option<&str>) -> String {
    let start = routine.marker();
    let end = end_marker(routine);
    let mut out = String::new();
    let mut inside = false;
    for line in crontab.lines() {
        if line == start {
            inside = true;
            continue;
        }
        if inside {
            if line == end {
                inside = false;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if let Some(block) = block {
        out.push_str(block);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_is_written_as_near_as_cron_can() {
        assert_eq!(every_fields(300), "*/5 * * * *");
        assert_eq!(every_fields(7_200), "0 */2 * * *");
        assert_eq!(every_fields(172_800), "0 0 */2 * *");
    }

    #[test]
    fn paris_times_are_converted_for_a_machine_on_utc() {
        let paris: Tz = "Europe/Paris".parse().expect("a zone");
        let winter = NaiveDate::from_ymd_opt(2025, 1, 15).expect("a date");
        let summer = NaiveDate::from_ymd_opt(2025, 7, 15).expect("a date");
        assert_eq!(convert(winter, 3, 15, paris, Tz::UTC).1, 2);
        assert_eq!(convert(summer, 3, 15, paris, Tz::UTC).1, 1);
        // Half past midnight in Paris is the day before in UTC.
        let sunday = NaiveDate::from_ymd_opt(2025, 1, 12).expect("a sunday");
        assert_eq!(convert(sunday, 0, 30, paris, Tz::UTC), (6, 23, 30));
        assert!(same_rules(
            paris,
            "Europe/Brussels".parse().expect("a zone"),
            winter
        ));
        assert!(!same_rules(paris, Tz::UTC, winter));
    }

    #[test]
    fn words_with_blanks_quotes_or_percent_are_quoted_for_cron() {
        assert_eq!(shell_quote("/usr/bin/voisin"), "/usr/bin/voisin");
        assert_eq!(
            shell_quote("/srv/les amis/v.yaml"),
            "'/srv/les amis/v.yaml'"
        );
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("/srv/100%"), "'/srv/100\\%'");
    }
}
