//! Loan reminders: a mail to the borrower some days before the due date
//! (the `reminder_before` setting) and one once it has passed. Each is sent
//! once per loan; flags on the loan remember it, so a restart never sends
//! one twice.

use chrono::Days;
use rusqlite::{Connection, params};

use super::Shared;

/// Queues the reminders due today; returns how many.
/// Runs in the caller's transaction.
pub(crate) fn queue_due(tx: &Connection, shared: &Shared) -> anyhow::Result<usize> {
    let today = shared.clock.today();
    let soon = today + Days::new(u64::try_from(shared.config.reminder_days()).unwrap_or(0));
    let (today, soon) = (today.to_string(), soon.to_string());
    let mut queued = 0;
    // (which flag, which mail, which loans)
    let passes = [
        (
            "reminded_before",
            "mail_reminder",
            "r.due_date <= ?1 AND r.due_date >= ?2",
            soon.as_str(),
        ),
        (
            "reminded_after",
            "mail_overdue",
            "r.due_date < ?1 AND ?2 = ?2",
            today.as_str(),
        ),
    ];
    for (flag, key, condition, bound) in passes {
        let due: Vec<(i64, String, String, String)> = {
            let mut stmt = tx.prepare(&format!(
                "SELECT r.id, m.email, o.title, r.due_date FROM requests r
                 JOIN offers o ON o.id = r.offer_id JOIN members m ON m.id = r.requester_id
                 WHERE r.state = 'lent' AND r.{flag} = 0 AND {condition}"
            ))?;
            let rows = stmt.query_map(params![bound, today], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        for (id, email, title, due_date) in due {
            let t = &shared.texts;
            let link = format!("{}/requests", shared.config.public_url);
            let values = [
                ("offer", title.as_str()),
                ("due", due_date.as_str()),
                ("link", link.as_str()),
            ];
            shared.queue_mail(
                tx,
                &email,
                &t.fill(&format!("{key}_subject"), &values),
                &t.fill(&format!("{key}_body"), &values),
            )?;
            tx.execute(
                &format!("UPDATE requests SET {flag} = 1 WHERE id = ?1"),
                [id],
            )?;
            // A loan found only once overdue needs no "due soon" mail after.
            if flag == "reminded_after" {
                tx.execute(
                    "UPDATE requests SET reminded_before = 1 WHERE id = ?1",
                    [id],
                )?;
            }
            queued += 1;
        }
    }
    Ok(queued)
}
