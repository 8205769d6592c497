//! The board's mail against a small SMTP server written here, on loopback:
//! loan requests and reminders arrive, and mails queued while the server
//! is down are delivered once it is back.

// A test that cannot unwrap has failed, and the panic says where.
#![allow(clippy::unwrap_used)]

mod board_support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use board_support::TestBoard;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;
use voisin::board::config::{SmtpConfig, SmtpTls};

/// A received mail: the envelope recipients and the raw message.
#[derive(Debug, Clone)]
struct Received {
    to: Vec<String>,
    data: String,
}

/// Starts a minimal SMTP server on `listener` that accepts every mail.
fn smtp_server(listener: TcpListener) -> Arc<Mutex<Vec<Received>>> {
    let inbox = Arc::new(Mutex::new(Vec::new()));
    let keep = inbox.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let inbox = keep.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 test ESMTP\r\n").await.unwrap();
                let mut to = Vec::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250-test\r\n250 OK\r\n",
                        "RCPT" => {
                            to.push(line[8..].trim().trim_matches(['<', '>']).to_string());
                            b"250 OK\r\n"
                        }
                        "DATA" => {
                            write.write_all(b"354 go on\r\n").await.unwrap();
                            let mut data = String::new();
                            while let Ok(Some(l)) = lines.next_line().await {
                                if l == "." {
                                    break;
                                }
                                data.push_str(&l);
                                data.push('\n');
                            }
                            inbox.lock().unwrap().push(Received {
                                to: std::mem::take(&mut to),
                                data,
                            });
                            b"250 queued\r\n"
                        }
                        "QUIT" => {
                            write.write_all(b"221 bye\r\n").await.unwrap();
                            return;
                        }
                        _ => b"250 OK\r\n",
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    inbox
}

fn smtp_at(addr: SocketAddr) -> SmtpConfig {
    SmtpConfig {
        host: addr.ip().to_string(),
        port: addr.port(),
        credentials: None,
        from: "pret@amis-quartier.org".into(),
        tls: SmtpTls::None,
    }
}

fn received(inbox: &Arc<Mutex<Vec<Received>>>) -> Vec<Received> {
    inbox.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_loan_request_and_the_reminders_reach_the_smtp_server() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let inbox = smtp_server(listener);
    let b = TestBoard::with(|c| c.smtp = Some(smtp_at(addr)));
    let mut alice = b.signed_in("alice").await;
    let mut bob = b.signed_in("bob").await;
    let drill = alice.offer("Drill", "tools").await;
    bob.post(
        &format!("/offers/{drill}/request"),
        &[
            ("start_date", "2026-11-02"),
            ("end_date", "2026-11-06"),
            ("message", "For the shelves"),
        ],
    )
    .await;
    let sent = b.board.deliver_mail().await.unwrap();
    assert_eq!(sent.sent, 1);
    let mails = received(&inbox);
    assert_eq!(mails[0].to, ["alice@amis-quartier.org"]);
    assert!(
        mails[0].data.contains("For the shelves"),
        "{}",
        mails[0].data
    );
    assert!(mails[0].data.contains("From: pret@amis-quartier.org"));

    let loan = b.count("SELECT id FROM requests");
    alice.post(&format!("/requests/{loan}/accept"), &[]).await;
    alice.post(&format!("/requests/{loan}/lend"), &[]).await;
    assert_eq!(
        b.board.send_reminders().await.unwrap(),
        0,
        "not yet: due in four days"
    );

    b.clock.advance(2 * 86_400 + 3_600); // 2026-11-04: due in two days
    assert_eq!(b.board.send_reminders().await.unwrap(), 1);
    assert_eq!(
        b.board.send_reminders().await.unwrap(),
        0,
        "a reminder goes out once"
    );
    b.board.deliver_mail().await.unwrap();
    let reminder = received(&inbox)
        .into_iter()
        .find(|m| m.data.contains("Reminder"))
        .unwrap();
    assert_eq!(reminder.to, ["bob@amis-quartier.org"]);
    assert!(reminder.data.contains("2026-11-06"));

    b.clock.advance(3 * 86_400); // 2026-11-07: one day late
    assert_eq!(b.board.send_reminders().await.unwrap(), 1);
    b.board.deliver_mail().await.unwrap();
    let late = received(&inbox)
        .into_iter()
        .find(|m| m.data.contains("was due on"))
        .unwrap();
    assert_eq!(late.to, ["bob@amis-quartier.org"]);
    assert!(alice.get("/requests").await.body.contains("Overdue"));
}

#[tokio::test(flavor = "multi_thread")]
async fn mails_wait_in_the_queue_while_the_server_is_down_and_go_out_once_it_is_back() {
    // Take a free port, then close it: nothing listens there for now.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let b = TestBoard::with(|c| c.smtp = Some(smtp_at(addr)));
    let mut alice = b.signed_in("alice").await;
    let drill = alice.offer("Drill", "tools").await;
    b.signed_in("bob")
        .await
        .post(&format!("/offers/{drill}/request"), &[])
        .await;
    b.signed_in("carol")
        .await
        .post(&format!("/offers/{drill}/request"), &[])
        .await;

    let first = b.board.deliver_mail().await.unwrap();
    assert_eq!((first.sent, first.deferred), (0, 2));
    assert_eq!(
        b.count("SELECT count(*) FROM mail_queue WHERE sent_at IS NULL AND attempts = 1"),
        2
    );
    let error: String = b.query("SELECT last_error FROM mail_queue LIMIT 1", |c, sql| {
        c.query_row(sql, [], |r| r.get(0)).unwrap()
    });
    assert!(error.contains(&addr.port().to_string()), "{error}");

    b.clock.advance(30);
    assert_eq!(
        b.board.deliver_mail().await.unwrap().deferred,
        2,
        "still down: tried again"
    );
    assert_eq!(b.count("SELECT max(attempts) FROM mail_queue"), 2);

    let inbox = smtp_server(TcpListener::bind(addr).await.unwrap());
    assert_eq!(
        b.board.deliver_mail().await.unwrap().sent,
        0,
        "waits for its back-off"
    );
    b.clock.advance(60);
    assert_eq!(b.board.deliver_mail().await.unwrap().sent, 2);
    assert_eq!(received(&inbox).len(), 2);
    assert_eq!(
        b.count("SELECT count(*) FROM mail_queue WHERE sent_at IS NULL"),
        0,
        "nothing lost"
    );
    assert_eq!(
        b.board.deliver_mail().await.unwrap().sent,
        0,
        "nothing sent twice"
    );
}
