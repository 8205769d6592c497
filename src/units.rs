//! Sizes (`5 GB`) and durations (`21d`) as people write them in manifests.

use std::time::Duration;

/// Size units voisin reads, with their factor in bytes.
const SIZE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("kB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];

/// The sizes [`parse_size`] reads, as a JSON Schema (ECMA 262) pattern: the
/// editor schema uses it, and a test keeps both verdicts the same.
pub const SIZE_PATTERN: &str = r"^\s*[0-9]+(\.[0-9]+)?\s*([kKmMgGtT][iI]?[bB]|[bB])\s*$";

/// The durations [`parse_duration`] reads, as a JSON Schema pattern.
pub const DURATION_PATTERN: &str = r"^\s*([0-9]+[smhdwy])+\s*$";

/// French unit names people write (`5 Go`), with the unit voisin reads.
const FRENCH_SIZE_UNITS: &[(&str, &str)] = &[
    ("o", "B"),
    ("ko", "kB"),
    ("mo", "MB"),
    ("go", "GB"),
    ("to", "TB"),
    ("kio", "KiB"),
    ("mio", "MiB"),
    ("gio", "GiB"),
    ("tio", "TiB"),
];

/// Why a size or duration could not be read: a message and a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitError {
    /// What is wrong.
    pub message: String,
    /// What to write instead.
    pub hint: String,
}

/// Reads a size like `5 GB`, `500MiB` or `1.5 TB` into bytes. Units are
/// read without regard to case (`5 gb` is `5 GB`); a bare number is refused
/// because nobody can tell whether `5` meant bytes or gigabytes.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .unwrap_or(text.len());
    let (number, unit) = (&text[..split], text[split..].trim());
    let hint = || "write a number and a unit, like `5 GB` or `500 MiB`".to_string();
    // The decimal comma and French units are what French speakers write:
    // say what voisin reads instead.
    let english_unit = FRENCH_SIZE_UNITS
        .iter()
        .find(|(fr, _)| fr.eq_ignore_ascii_case(unit))
        .map_or(unit, |(_, en)| *en);
    let point_number = number.replace(',', ".");
    let suggestion = format!("{point_number} {english_unit}");
    if (number.contains(',') || english_unit != unit)
        && !point_number.is_empty()
        && parse_size(&suggestion).is_ok()
    {
        let (why, rule) = if number.contains(',') {
            (
                format!("`{number}` has a decimal comma"),
                "voisin reads a decimal point".to_string(),
            )
        } else {
            (
                format!("`{unit}` is not a size unit voisin reads"),
                format!("units are written in English: `{unit}` is `{english_unit}`"),
            )
        };
        return Err(UnitError {
            message: format!("`{text}` is not a size: {why}"),
            hint: format!("did you mean `{suggestion}`? {rule}"),
        });
    }
    if !is_decimal(number) {
        return Err(UnitError {
            message: format!("`{text}` is not a size"),
            hint: hint(),
        });
    }
    if number.is_empty() {
        return Err(UnitError {
            message: format!("`{text}` is not a size"),
            hint: hint(),
        });
    }
    if unit.is_empty() {
        return Err(UnitError {
            message: format!("the size `{text}` has no unit"),
            hint: format!("write `{number} GB` or `{number} MB`"),
        });
    }
    let Some((_, factor)) = SIZE_UNITS
        .iter()
        .find(|(u, _)| u.eq_ignore_ascii_case(unit))
    else {
        return Err(UnitError {
            message: format!("`{unit}` is not a size unit"),
            hint: format!(
                "use one of {}",
                crate::diagnostic::one_of(SIZE_UNITS.iter().map(|(u, _)| *u))
            ),
        });
    };
    let value: f64 = number.parse().map_err(|_| UnitError {
        message: format!("`{number}` is not a number"),
        hint: hint(),
    })?;
    if !value.is_finite() {
        return Err(UnitError {
            message: format!("`{text}` is too large"),
            hint: hint(),
        });
    }
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let bytes = (value * *factor as f64).round() as u64;
    Ok(bytes)
}

/// True for digits with at most one decimal point between digits, as
/// [`SIZE_PATTERN`] has it: `5`, `1.5`, not `5.` or `.5`.
fn is_decimal(number: &str) -> bool {
    let mut parts = number.splitn(2, '.');
    let whole = parts.next().unwrap_or("");
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && parts.next().is_none_or(digits)
}

/// Reads a duration like `21d`, `2h30m` or `90s`. Units: `s`, `m`
/// (minutes), `h`, `d`, `w`, `y` (365 days).
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let text = text.trim();
    let hint = "write a number and a unit, like `21d`, `12h` or `1w` (units: s, m, h, d, w, y)";
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UnitError {
            message: format!("the duration `{text}` has no unit"),
            hint: format!("write `{text}d` for days or `{text}h` for hours"),
        });
    }
    let mut total: u64 = 0;
    let mut rest = text;
    if rest.is_empty() {
        return Err(UnitError {
            message: "the duration is empty".into(),
            hint: hint.into(),
        });
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_len = rest[digits..]
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len() - digits);
        let (number, unit) = (&rest[..digits], &rest[digits..digits + unit_len]);
        let seconds = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            "y" => 365 * 86_400,
            _ => 0,
        };
        let n: u64 = number.parse().unwrap_or(0);
        if number.is_empty() || seconds == 0 {
            return Err(UnitError {
                message: format!("`{text}` is not a duration"),
                hint: hint.into(),
            });
        }
        total = total.saturating_add(n.saturating_mul(seconds));
        rest = &rest[digits + unit_len..];
    }
    Ok(Duration::from_secs(total))
}

/// A time of day, `HH:MM`, as `(hour, minute)`.
pub fn parse_time_of_day(text: &str) -> Result<(u8, u8), UnitError> {
    let hint = || "write a 24-hour time, like `03:15`".to_string();
    let bad = || UnitError {
        message: format!("`{}` is not a time of day", text.trim()),
        hint: hint(),
    };
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    let number = |p: &str, max: u8| {
        (matches!(p.len(), 1 | 2) && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse::<u8>().ok())
            .flatten()
            .filter(|n| *n <= max)
    };
    match (number(h, 23), number(m, 59)) {
        // Minutes take two digits: `3:5` is more likely a typo than 03:05.
        (Some(h), Some(m)) if m_len(text) == 2 => Ok((h, m)),
        _ => Err(bad()),
    }
}

fn m_len(text: &str) -> usize {
    text.trim().rsplit(':').next().map_or(0, str::len)
}

/// Day names [`parse_weekly`] reads, in English and French, Monday first.
const DAYS: [[&str; 2]; 7] = [
    ["mon", "lun"],
    ["tue", "mar"],
    ["wed", "mer"],
    ["thu", "jeu"],
    ["fri", "ven"],
    ["sat", "sam"],
    ["sun", "dim"],
];

/// A weekly time, `sun 04:30`, as (day from Monday = 0, hour, minute).
/// Days are read by their first three letters, in English or French.
pub fn parse_weekly(text: &str) -> Result<(u8, u8, u8), UnitError> {
    let trimmed = text.trim();
    let hint = "write a day and a 24-hour time, like `sun 04:30`".to_string();
    let Some((day, time)) = trimmed.split_once(char::is_whitespace) else {
        return Err(UnitError {
            message: format!("`{trimmed}` has no day"),
            hint,
        });
    };
    let key: String = day.to_lowercase().chars().take(3).collect();
    let Some(index) = DAYS
        .iter()
        .position(|names| key.chars().count() == 3 && names.contains(&key.as_str()))
    else {
        return Err(UnitError {
            message: format!("`{day}` is not a day of the week"),
            hint,
        });
    };
    let (h, m) = parse_time_of_day(time).map_err(|e| UnitError {
        message: e.message,
        hint: hint.clone(),
    })?;
    #[allow(clippy::cast_possible_truncation)]
    Ok((index as u8, h, m))
}

/// A minimum of free space: a size (`5 GB`) or a share of the disk (`10%`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FreeSpace {
    /// At least this many bytes.
    Bytes(u64),
    /// At least this share of the disk, in percent.
    Percent(f64),
}

impl FreeSpace {
    /// Whether `available` bytes of a disk of `total` fall short.
    pub fn short(self, available: u64, total: u64) -> bool {
        match self {
            Self::Bytes(min) => available < min,
            #[allow(clippy::cast_precision_loss)]
            Self::Percent(p) => (available as f64) < total as f64 * p / 100.0,
        }
    }
}

/// Reads a minimum of free space: `10%` or a size like `5 GB`.
pub fn parse_free_space(text: &str) -> Result<FreeSpace, UnitError> {
    let trimmed = text.trim();
    if let Some(number) = trimmed.strip_suffix('%') {
        return match number.trim().parse::<f64>() {
            Ok(p) if (0.0..100.0).contains(&p) => Ok(FreeSpace::Percent(p)),
            _ => Err(UnitError {
                message: format!("`{trimmed}` is not a share of the disk"),
                hint: "write a share below 100%, like `10%`, or a size, like `5 GB`".into(),
            }),
        };
    }
    parse_size(trimmed)
        .map(FreeSpace::Bytes)
        .map_err(|e| UnitError {
            message: e.message,
            hint: "write a share of the disk, like `10%`, or a size, like `5 GB`".into(),
        })
}

/// Bytes as people read them: `512 B`, `3.4 MB`, `1.2 GB` (powers of 1000).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
#[allow(clippy::duration_suboptimal_units)]
mod tests {

    #[test]
    fn times_of_day_and_weekly_times_are_read_as_people_write_them() {
        assert_eq!(parse_time_of_day("03:15"), Ok((3, 15)));
        assert_eq!(parse_time_of_day(" 3:05 "), Ok((3, 5)));
        for bad in ["24:00", "3:5", "0315", "12:60", "", "ab:cd", "-1:10"] {
            assert!(parse_time_of_day(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_weekly("sun 04:30"), Ok((6, 4, 30)));
        assert_eq!(parse_weekly("Dimanche 4:30"), Ok((6, 4, 30)));
        assert_eq!(parse_weekly("mon 00:00"), Ok((0, 0, 0)));
        for bad in ["04:30", "sunday", "xyz 04:30", "su 04:30", "sun 4h30"] {
            assert!(parse_weekly(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn free_space_is_a_share_or_a_size() {
        assert_eq!(parse_free_space("10%"), Ok(FreeSpace::Percent(10.0)));
        assert_eq!(
            parse_free_space("5 GB"),
            Ok(FreeSpace::Bytes(5_000_000_000))
        );
        assert!(parse_free_space("100%").is_err());
        assert!(parse_free_space("lots").is_err());
        assert!(FreeSpace::Percent(10.0).short(9, 100));
        assert!(!FreeSpace::Percent(10.0).short(10, 100));
        assert!(FreeSpace::Bytes(10).short(9, 1_000));
    }

    use super::*;

    #[test]
    fn reads_sizes_with_decimal_and_binary_units() {
        assert_eq!(parse_size("5 GB"), Ok(5_000_000_000));
        assert_eq!(parse_size("500MiB"), Ok(500 << 20));
        assert_eq!(parse_size("1.5 kB"), Ok(1_500));
        assert_eq!(parse_size("2 gb"), Ok(2_000_000_000));
    }

    #[test]
    fn refuses_sizes_without_a_known_unit() {
        assert_eq!(
            parse_size("5").expect_err("no unit").hint,
            "write `5 GB` or `5 MB`"
        );
        assert!(
            parse_size("5 GX")
                .expect_err("bad unit")
                .message
                .contains("`GX`")
        );
        assert!(parse_size("GB").is_err());
        assert!(parse_size("1.2.3 GB").is_err());
    }

    #[test]
    fn suggests_english_units_and_a_decimal_point() {
        assert_eq!(
            parse_size("5 Go").expect_err("french").hint,
            "did you mean `5 GB`? units are written in English: `Go` is `GB`"
        );
        assert!(
            parse_size("500 Mo")
                .expect_err("french")
                .hint
                .starts_with("did you mean `500 MB`?")
        );
        assert!(
            parse_size("2,5 GB")
                .expect_err("comma")
                .hint
                .starts_with("did you mean `2.5 GB`?")
        );
        assert!(parse_size("5. GB").is_err());
        assert!(parse_size(".5 GB").is_err());
    }

    #[test]
    fn reads_durations_with_several_parts() {
        assert_eq!(parse_duration("21d"), Ok(Duration::from_secs(21 * 86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert!(
            parse_duration("21")
                .expect_err("no unit")
                .message
                .contains("no unit")
        );
        assert!(parse_duration("3 days").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("").is_err());
    }
}
