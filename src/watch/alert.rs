//! Alerts: what a pass has to tell, sent through channels that do not
//! depend on the association's own mail — an outside SMTP relay and a
//! webhook. One alert per pass carries every change, so a bad night is one
//! message, not one per container.

use std::fmt::Write as _;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};

use super::incidents::Changes;
use super::{Severity, human_age};
use crate::manifest::{SmtpRelay, SmtpSecurity, Webhook, WebhookFormat};
use crate::secrets::Secret;

/// The secret that holds the relay's password.
pub const SMTP_SECRET: &str = "alerts-smtp";

/// An alert, ready for any channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The association's name.
    pub association: String,
    /// One line: what happened, for a mail subject or a notification title.
    pub subject: String,
    /// Every change, one paragraph each.
    pub text: String,
    /// The worst severity told; none when only ends are told.
    pub severity: Option<Severity>,
    /// `problem` when something started or goes on, else `resolved`.
    pub state: &'static str,
}

impl Alert {
    /// The alert for a pass's `changes`, at `now`.
    pub fn of(association: &str, changes: &Changes, now: i64) -> Self {
        let mut parts = Vec::new();
        let count = |n: usize, what: &str| match n {
            0 => None,
            1 => Some(format!("1 {what}")),
            n => Some(format!("{n} {what}s")),
        };
        parts.extend(count(changes.started.len(), "new problem"));
        parts.extend(count(changes.reminded.len(), "ongoing problem"));
        parts.extend(count(changes.resolved.len(), "resolved problem"));
        let mut text = String::new();
        // Writing into a String cannot fail.
        for f in &changes.started {
            let _ = write!(
                text,
                "[{}] {}\n  what to do: {}\n  ({})\n\n",
                f.severity.word().to_uppercase(),
                f.message,
                f.hint,
                f.code
            );
        }
        for (f, since) in &changes.reminded {
            let _ = write!(
                text,
                "[STILL {}] {} (for {})\n  what to do: {}\n  ({})\n\n",
                f.severity.word().to_uppercase(),
                f.message,
                human_age(now - since),
                f.hint,
                f.code
            );
        }
        for f in &changes.resolved {
            let _ = write!(text, "[RESOLVED] {}\n  ({})\n\n", f.message, f.code);
        }
        text.push_str("`voisin status` shows everything; this alert came from `voisin watch`.\n");
        let severity = changes.worst();
        Self {
            association: association.to_string(),
            subject: format!("{association}: {}", parts.join(", ")),
            text,
            severity,
            state: if severity.is_some() {
                "problem"
            } else {
                "resolved"
            },
        }
    }
}

/// Why an alert did not go out through one channel. Messages name the
/// server and what failed, never a password.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The relay refused the alert or could not be reached.
    #[error("the SMTP relay {host}: {reason}")]
    Smtp {
        /// The relay.
        host: String,
        /// Why.
        reason: String,
    },
    /// The webhook refused the alert or could not be reached.
    #[error("the webhook {url}: {reason}")]
    Webhook {
        /// Where it was posted, without its path (a topic may be private).
        url: String,
        /// Why.
        reason: String,
    },
}

/// Sends `alert` by mail through `relay` to each of `to`.
pub async fn mail(
    relay: &SmtpRelay,
    password: Option<&Secret>,
    to: &[String],
    alert: &Alert,
) -> Result<(), AlertError> {
    let fail = |reason: String| AlertError::Smtp {
        host: relay.host.clone(),
        reason,
    };
    let builder = match relay.security {
        SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&relay.host),
        SmtpSecurity::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&relay.host)
            .map_err(|e| fail(format!("cannot set up STARTTLS: {e}")))?,
        SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&relay.host)
            .map_err(|e| fail(format!("cannot set up TLS: {e}")))?,
    };
    let port = relay.port.unwrap_or(match relay.security {
        SmtpSecurity::Tls => 465,
        SmtpSecurity::Starttls | SmtpSecurity::None => 587,
    });
    let mut builder = builder.port(port).timeout(Some(Duration::from_secs(20)));
    if let Some(user) = &relay.username {
        let Some(password) = password else {
            return Err(fail(format!(
                "no password for `{user}`: run `voisin secrets set {SMTP_SECRET}`"
            )));
        };
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.expose().to_string(),
        ));
    }
    let transport = builder.build();
    let mut message = Message::builder()
        .from(
            relay
                .from
                .parse()
                .map_err(|e| fail(format!("the sender `{}`: {e}", relay.from)))?,
        )
        .subject(format!("[voisin] {}", alert.subject));
    for address in to {
        message = message.to(address
            .parse()
            .map_err(|e| fail(format!("the recipient `{address}`: {e}")))?);
    }
    let message = message
        .header(ContentType::TEXT_PLAIN)
        .body(alert.text.clone())
        .map_err(|e| fail(e.to_string()))?;
    transport
        .send(message)
        .await
        .map_err(|e| fail(e.to_string()))?;
    Ok(())
}

/// Posts `alert` to `hook` in its format.
pub async fn post(hook: &Webhook, alert: &Alert) -> Result<(), AlertError> {
    let shown = url::Url::parse(&hook.url).map_or_else(
        |_| "(invalid address)".to_string(),
        |u| format!("{}://{}", u.scheme(), u.host_str().unwrap_or_default()),
    );
    let fail = |reason: String| AlertError::Webhook {
        url: shown.clone(),
        reason,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let request = client.post(&hook.url);
    let request = match hook.format {
        WebhookFormat::Json => json(
            request,
            &serde_json::json!({
                "association": alert.association,
                "state": alert.state,
                "severity": alert.severity.map(Severity::word),
                "subject": alert.subject,
                "text": alert.text,
            }),
        ),
        WebhookFormat::Ntfy => request
            .header("Title", alert.subject.clone())
            .header(
                "Priority",
                match alert.severity {
                    Some(Severity::Critical) => "urgent",
                    Some(Severity::Warning) => "high",
                    None => "default",
                },
            )
            .header(
                "Tags",
                if alert.severity.is_some() {
                    "warning"
                } else {
                    "white_check_mark"
                },
            )
            .body(alert.text.clone()),
        WebhookFormat::Matrix => json(
            request,
            &serde_json::json!({
                "msgtype": "m.text",
                "body": format!("{}\n\n{}", alert.subject, alert.text),
            }),
        ),
    };
    let response = request.send().await.map_err(|e| fail(without_url(e)))?;
    if !response.status().is_success() {
        return Err(fail(format!("answered {}", response.status())));
    }
    Ok(())
}

fn json(request: reqwest::RequestBuilder, body: &serde_json::Value) -> reqwest::RequestBuilder {
    request
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
}

/// reqwest's error, without the address it carries (whose path may be a
/// private topic).
fn without_url(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::Finding;

    #[test]
    fn one_alert_tells_every_change_of_a_pass() {
        let f = |code: &str, severity| Finding {
            code: code.into(),
            subject: "x".into(),
            severity,
            message: format!("{code} happened"),
            hint: "do something".into(),
        };
        let changes = Changes {
            started: vec![f("container-down", Severity::Critical)],
            reminded: vec![(f("backup-late", Severity::Warning), 0)],
            resolved: vec![f("disk-low", Severity::Warning)],
        };
        let alert = Alert::of("Les Amis", &changes, 7_200);
        assert_eq!(
            alert.subject,
            "Les Amis: 1 new problem, 1 ongoing problem, 1 resolved problem"
        );
        assert_eq!(alert.severity, Some(Severity::Critical));
        assert!(alert.text.contains("[CRITICAL] container-down happened"));
        assert!(
            alert
                .text
                .contains("[STILL WARNING] backup-late happened (for 2 h)")
        );
        assert!(alert.text.contains("[RESOLVED] disk-low happened"));
        let ended = Alert::of(
            "Les Amis",
            &Changes {
                resolved: vec![f("disk-low", Severity::Warning)],
                ..Changes::default()
            },
            0,
        );
        assert_eq!(ended.state, "resolved");
    }
}
