//! Generated offers for benchmarks and demonstrations: `voisin board seed`.
//! Not for real boards; it adds a `seed` member who owns every offer.

use std::path::Path;

use rusqlite::params;

use super::{Clock as _, SystemClock, db::Db};

/// Words titles are made of, so searches find something.
const WORDS: &[&str] = &[
    "perceuse",
    "échelle",
    "roman",
    "tente",
    "vélo",
    "scie",
    "ponceuse",
    "guitare",
    "jeu",
    "film",
    "livre",
    "tondeuse",
    "raclette",
    "projecteur",
    "appareil",
    "cuisine",
];

/// Adds `count` offers spread over `categories`, with a member `seed`
/// (password `seed`) who owns them.
pub fn seed(database: &Path, count: u32, categories: &[String]) -> anyhow::Result<()> {
    let db = Db::open(database, 1)?;
    let now = SystemClock.now();
    let hash = super::hash_password("seed")?;
    db.blocking(|c| {
        let tx = c.transaction()?;
        tx.execute(
            "INSERT OR IGNORE INTO members (id, name, email, admin, initial_hash, password_hash, created_at)
             VALUES ('seed', 'Seed Member', 'seed@example.org', 1, ?1, ?1, ?2)",
            params![hash, now],
        )?;
        {
            let mut insert = tx.prepare(
                "INSERT INTO offers (owner_id, kind, category, title, description, condition, created_at)
                 VALUES ('seed', ?1, ?2, ?3, ?4, 'good', ?5)",
            )?;
            for i in 0..count {
                let n = i as usize;
                let category = &categories[n % categories.len()];
                let kind = if category == "services" { "service" } else { "item" };
                let title = format!("{} {} {i}", WORDS[n % WORDS.len()], WORDS[(n / 7) % WORDS.len()]);
                let description = format!(
                    "{title}: lent gladly to neighbours, pick-up in the evening. Offer number {i}."
                );
                insert.execute(params![kind, category, title, description, now - i64::from(i) * 60])?;
            }
        }
        tx.commit()?;
        Ok(())
    })
}
