//! Outgoing mail. Every mail is first written to a queue in the database,
//! in the same transaction as the change it tells about, then delivered by
//! a background task through the association's SMTP server. A failed
//! delivery is retried with growing delays, so when the server is down
//! nothing is lost: mails wait until it is back.

use std::time::Duration;

use anyhow::Context as _;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use rusqlite::{Connection, params};

use super::config::{SmtpConfig, SmtpTls};
use super::db::Db;

/// Adds a mail to the queue; the background task delivers it.
pub fn enqueue(
    conn: &Connection,
    recipient: &str,
    subject: &str,
    body: &str,
    now: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO mail_queue (recipient, subject, body, created_at, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?4)",
        params![recipient, subject, body, now],
    )?;
    Ok(())
}

/// Seconds to wait before the next try after `attempts` failed ones:
/// 30 s, 1 min, 2 min… up to an hour.
pub fn backoff(attempts: u32) -> i64 {
    (30_i64 << attempts.saturating_sub(1).min(7)).min(3_600)
}

/// What one delivery round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Mails the server accepted.
    pub sent: usize,
    /// Mails that stay queued for a later try.
    pub deferred: usize,
}

struct Queued {
    id: i64,
    recipient: String,
    subject: String,
    body: String,
    attempts: u32,
}

/// Tries to deliver every queued mail whose time has come.
pub async fn deliver_due(db: &Db, smtp: Option<&SmtpConfig>, now: i64) -> anyhow::Result<Delivery> {
    let Some(smtp) = smtp else {
        // No server configured: mails wait for one.
        return Ok(Delivery::default());
    };
    let due = db
        .call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, recipient, subject, body, attempts FROM mail_queue
                 WHERE sent_at IS NULL AND next_attempt_at <= ?1 ORDER BY id LIMIT 100",
            )?;
            let rows = stmt.query_map([now], |r| {
                Ok(Queued {
                    id: r.get(0)?,
                    recipient: r.get(1)?,
                    subject: r.get(2)?,
                    body: r.get(3)?,
                    attempts: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await?;
    let mut report = Delivery::default();
    if due.is_empty() {
        return Ok(report);
    }
    let transport = transport(smtp)?;
    for mail in due {
        let outcome = send(&transport, smtp, &mail).await;
        let id = mail.id;
        match outcome {
            Ok(()) => {
                report.sent += 1;
                db.write(move |c| {
                    c.execute(
                        "UPDATE mail_queue SET sent_at = ?2, last_error = NULL WHERE id = ?1",
                        params![id, now],
                    )?;
                    Ok(())
                })
                .await?;
            }
            Err(err) => {
                report.deferred += 1;
                let attempts = mail.attempts + 1;
                let next = now + backoff(attempts);
                // lettre's errors name the server and the failure, never the
                // credentials, so they are safe to keep and show.
                let error = format!("{err:#}");
                eprintln!("board: mail {id} not delivered (attempt {attempts}): {error}");
                db.write(move |c| {
                    c.execute(
                        "UPDATE mail_queue SET attempts = ?2, next_attempt_at = ?3, last_error = ?4 WHERE id = ?1",
                        params![id, attempts, next, error],
                    )?;
                    Ok(())
                })
                .await?;
            }
        }
    }
    Ok(report)
}

fn transport(smtp: &SmtpConfig) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let builder = match smtp.tls {
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
        SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)
            .context("cannot set up STARTTLS for the smtp server")?,
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)
            .context("cannot set up TLS for the smtp server")?,
    };
    let mut builder = builder
        .port(smtp.port)
        .timeout(Some(Duration::from_secs(15)));
    if let Some((user, password)) = &smtp.credentials {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.expose().to_string(),
        ));
    }
    Ok(builder.build())
}

async fn send(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    smtp: &SmtpConfig,
    mail: &Queued,
) -> anyhow::Result<()> {
    let message = Message::builder()
        .from(
            smtp.from
                .parse()
                .context("the sender address is not valid")?,
        )
        .to(mail
            .recipient
            .parse()
            .context("the recipient address is not valid")?)
        .subject(mail.subject.clone())
        .header(ContentType::TEXT_PLAIN)
        .body(mail.body.clone())
        .context("cannot build the mail")?;
    transport.send(message).await.with_context(|| {
        format!(
            "the smtp server `{}:{}` refused or failed",
            smtp.host, smtp.port
        )
    })?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::backoff;

    #[test]
    fn backoff_doubles_and_stops_at_an_hour() {
        assert_eq!(backoff(1), 30);
        assert_eq!(backoff(2), 60);
        assert_eq!(backoff(3), 120);
        assert_eq!(backoff(20), 3_600);
    }
}
