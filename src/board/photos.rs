//! Offers' photos in the database: a row in `photos` for the type and
//! size, the bytes in rows of `photo_chunks`, [`PHOTO_CHUNK`] each, so a
//! photo is served one indexed lookup per chunk whatever its size (read
//! in pieces from one blob, `SQLite` walked the blob's overflow pages from
//! its start for every piece: quadratic in the photo's size).

use rusqlite::{Connection, OptionalExtension as _, Transaction, params};

pub use super::db::PHOTO_CHUNK;

/// Stores `data`, of type `kind`, as offer `offer_id`'s photo.
pub fn store(tx: &Transaction<'_>, offer_id: i64, kind: &str, data: &[u8]) -> anyhow::Result<()> {
    tx.execute(
        "INSERT INTO photos (offer_id, content_type, size) VALUES (?1, ?2, ?3)",
        params![offer_id, kind, i64::try_from(data.len())?],
    )?;
    let mut insert =
        tx.prepare_cached("INSERT INTO photo_chunks (offer_id, seq, data) VALUES (?1, ?2, ?3)")?;
    for (seq, chunk) in (0_i64..).zip(data.chunks(PHOTO_CHUNK)) {
        insert.execute(params![offer_id, seq, chunk])?;
    }
    Ok(())
}

/// The type and size of offer `offer_id`'s photo, if it has one.
pub fn find(c: &Connection, offer_id: i64) -> anyhow::Result<Option<(String, u64)>> {
    let found = c
        .prepare_cached("SELECT content_type, size FROM photos WHERE offer_id = ?1")?
        .query_row([offer_id], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?)))
        .optional()?;
    Ok(match found {
        Some((kind, size)) => Some((kind, u64::try_from(size)?)),
        None => None,
    })
}

/// Chunk `seq` (from 0) of offer `offer_id`'s photo; `None` past the last.
pub fn chunk(c: &Connection, offer_id: i64, seq: i64) -> rusqlite::Result<Option<Vec<u8>>> {
    c.prepare_cached("SELECT data FROM photo_chunks WHERE offer_id = ?1 AND seq = ?2")?
        .query_row(params![offer_id, seq], |r| r.get(0))
        .optional()
}

/// Offer `offer_id`'s whole photo, `size` bytes long (as [`find`] said).
pub fn read_whole(c: &Connection, offer_id: i64, size: usize) -> anyhow::Result<Vec<u8>> {
    let mut whole = Vec::with_capacity(size);
    let mut read =
        c.prepare_cached("SELECT data FROM photo_chunks WHERE offer_id = ?1 ORDER BY seq")?;
    let mut rows = read.query([offer_id])?;
    while let Some(row) = rows.next()? {
        whole.extend_from_slice(row.get_ref(0)?.as_blob()?);
    }
    Ok(whole)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn board(dir: &std::path::Path) -> super::super::Db {
        let db = super::super::Db::open(&dir.join("b.sqlite"), 1).unwrap();
        db.blocking(|c| {
            c.execute(
                "INSERT INTO members (id, name, email, created_at) VALUES ('m', 'M', 'm@x', 0)",
                [],
            )?;
            c.execute(
                "INSERT INTO offers (id, owner_id, kind, category, title, has_photo, created_at)
                 VALUES (1, 'm', 'item', 'tools', 'Perceuse', 1, 0)",
                [],
            )?;
            Ok(())
        })
        .unwrap();
        db
    }

    fn bytes(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| u8::try_from((i * 7 + i / 251) % 256).unwrap())
            .collect()
    }

    #[test]
    fn a_photo_is_stored_in_chunks_each_found_by_one_index_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let db = board(dir.path());
        let photo = bytes(3 * PHOTO_CHUNK + 17);
        db.write_blocking(|tx| store(tx, 1, "image/png", &photo))
            .unwrap();
        db.blocking(|c| {
            assert_eq!(find(c, 1)?, Some(("image/png".into(), 3 * 65_536 + 17)));
            let sizes: Vec<usize> = (0..5)
                .filter_map(|seq| chunk(c, 1, seq).unwrap())
                .map(|b| b.len())
                .collect();
            assert_eq!(sizes, [PHOTO_CHUNK, PHOTO_CHUNK, PHOTO_CHUNK, 17]);
            assert_eq!(read_whole(c, 1, photo.len())?, photo);
            // One search of the primary key per chunk: never a scan, and
            // never a walk through a large blob.
            let plan: String = c.query_row(
                "EXPLAIN QUERY PLAN SELECT data FROM photo_chunks WHERE offer_id = 1 AND seq = 2",
                [],
                |r| r.get(3),
            )?;
            assert!(
                plan.starts_with("SEARCH photo_chunks USING INDEX"),
                "{plan}"
            );
            assert!(plan.contains("offer_id=? AND seq=?"), "{plan}");
            Ok(())
        })
        .unwrap();
    }
}
