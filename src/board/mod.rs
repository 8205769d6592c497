//! The neighbourhood lending board: members offer items and services and
//! borrow them from each other. An axum web service over one `SQLite` file,
//! with tera pages that work without JavaScript, in French or English.
//!
//! [`Board`] holds everything a running board shares; [`serve`] runs it
//! with its background task (mail delivery and loan reminders). Time comes
//! from an injected [`Clock`] so tests can move it.

mod auth;
pub mod backup;
mod cache;
mod clock;
pub mod config;
pub mod db;
pub mod health;
mod i18n;
pub mod mail;
pub mod members;
mod pages;
mod photos;
pub mod reminders;
mod routes;
pub mod seed;
mod server;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::Notify;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::Config;
pub use db::Db;
pub use members::hash_password;

use auth::{CookieNames, RateLimiter, Throttle};
use i18n::Texts;
use pages::Pages;

/// Photo uploads read at once: with the largest photo allowed (5 MB by
/// default) they hold some tens of megabytes at most.
const UPLOADS_AT_ONCE: usize = 3;

/// Photos kept in memory, each at most 256 KiB (`PHOTO_KEPT_SIZE` in
/// `routes/offers.rs`): 8 MB.
const PHOTOS_KEPT: usize = 32;

/// Members' pages kept in memory, each some 10 KB: 4 MB at most.
const MEMBER_PAGES_KEPT: usize = 400;

/// What every request and the background task share.
pub struct Shared {
    config: Config,
    db: Db,
    clock: Arc<dyn Clock>,
    pages: Pages,
    texts: Texts,
    limiter: RateLimiter,
    /// Failed password checks, per account and per client.
    throttle: Throttle,
    cookies: CookieNames,
    /// Wakes the mail task after a change, which may have queued mail.
    mail_waiting: Notify,
    /// Rendered offer lists, until the next change.
    lists: cache::ListCache,
    /// Offers and their requests as the offer page shows them, by id and
    /// day, until the next change.
    offer_pages: cache::Memo<(i64, String), Arc<routes::OfferData>>,
    /// Members' pages (front, lists, offers) by page, member and hour,
    /// until the next change, cut where the CSRF token goes.
    member_pages: cache::Memo<(String, String, i64), Arc<cache::CutPage>>,
    /// What pages kept in `member_pages` are rendered with in place of the
    /// CSRF token: random, so no text a member writes can contain it.
    csrf_slot: String,
    /// Small photos, by offer id, until the next change.
    photos: cache::Memo<i64, (axum::http::HeaderValue, axum::body::Bytes)>,
    /// Who each session is, until the next change.
    sessions: cache::SessionCache<routes::Member>,
    /// Password checks running at once: each takes megabytes and tens of
    /// milliseconds of CPU, so a burst of sign-ins queues instead.
    password_checks: tokio::sync::Semaphore,
    /// Photo uploads read at once (each holds its photo in memory).
    uploads: tokio::sync::Semaphore,
}

/// A lending board, ready to serve.
#[derive(Clone)]
pub struct Board {
    shared: Arc<Shared>,
}

impl Board {
    /// Opens the database, syncs the members file, and loads pages and
    /// texts.
    pub fn open(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let db = Db::open(&config.database, 8)?;
        if let Some(path) = &config.members_file {
            let file = members::MembersFile::load(path)?;
            let now = clock.now();
            let report = db.write_blocking(|tx| members::sync(tx, &file, now))?;
            eprintln!(
                "board: members synced ({} in the file, {} new, {} disabled)",
                file.members.len(),
                report.added,
                report.disabled
            );
        }
        let texts = Texts::load(config.locale)?;
        Ok(Self {
            shared: Arc::new(Shared {
                pages: Pages::load(&texts)?,
                texts,
                cookies: CookieNames::new(config.secure_cookies),
                limiter: RateLimiter::default(),
                throttle: Throttle::default(),
                mail_waiting: Notify::new(),
                lists: cache::ListCache::default(),
                offer_pages: cache::Memo::new(1_024),
                member_pages: cache::Memo::new(MEMBER_PAGES_KEPT),
                csrf_slot: auth::random_token(),
                photos: cache::Memo::new(PHOTOS_KEPT),
                sessions: cache::SessionCache::default(),
                password_checks: tokio::sync::Semaphore::new(2),
                uploads: tokio::sync::Semaphore::new(UPLOADS_AT_ONCE),
                config,
                db,
                clock,
            }),
        })
    }

    /// The HTTP routes.
    pub fn router(&self) -> axum::Router {
        routes::router(self.shared.clone())
    }

    /// Serves the board's routes on `listener` until `stop` resolves, with
    /// the read timeouts and connection caps of its settings (the
    /// background task is [`Board::background`]'s to start).
    pub async fn serve_on(
        &self,
        listener: tokio::net::TcpListener,
        stop: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        server::run(listener, self.router(), &self.shared.config, stop).await
    }

    /// Every path that answers a GET, as the router registers them.
    pub fn get_paths() -> Vec<&'static str> {
        routes::get_paths()
    }

    /// Every path that takes a POST, as the router registers them.
    pub fn post_paths() -> Vec<&'static str> {
        routes::post_paths()
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.shared.db
    }

    /// Delivers the mails whose time has come.
    pub async fn deliver_mail(&self) -> anyhow::Result<mail::Delivery> {
        let s = &self.shared;
        mail::deliver_due(&s.db, s.config.smtp.as_ref(), s.clock.now()).await
    }

    /// Queues the reminders due today.
    pub async fn send_reminders(&self) -> anyhow::Result<usize> {
        let shared = self.shared.clone();
        let queued = self
            .shared
            .db
            .write(move |tx| reminders::queue_due(tx, &shared))
            .await?;
        Ok(queued)
    }

    /// Deletes expired sessions and links and old delivered mails.
    pub async fn tidy(&self) -> anyhow::Result<usize> {
        let now = self.shared.clock.now();
        self.shared.db.write(move |tx| db::tidy(tx, now)).await
    }

    /// The background work, forever: reminders once a minute, mail as soon
    /// as some is queued and every 15 seconds for retries.
    pub async fn background(self) {
        let mut last_reminders: Option<i64> = None;
        loop {
            let now = self.shared.clock.now();
            if last_reminders.is_none_or(|last| now.saturating_sub(last) >= 60) {
                last_reminders = Some(now);
                if let Err(err) = self.send_reminders().await {
                    eprintln!("board: reminders failed: {err:#}");
                }
                if let Err(err) = self.tidy().await {
                    eprintln!("board: tidying the database failed: {err:#}");
                }
            }
            if let Err(err) = self.deliver_mail().await {
                eprintln!("board: mail delivery failed: {err:#}");
            }
            tokio::select! {
                () = self.shared.mail_waiting.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(15)) => {}
            }
        }
    }
}

impl Shared {
    /// The values every page needs.
    fn context(&self, member: Option<&routes::Member>, csrf: &str) -> tera::Context {
        let mut ctx = tera::Context::new();
        ctx.insert("lang", self.config.locale.code());
        ctx.insert("association", &self.config.association);
        ctx.insert("categories", &self.config.categories);
        ctx.insert("me", &member);
        ctx.insert("csrf", csrf);
        ctx.insert("notice", "");
        ctx
    }

    /// Queues a mail, in the caller's transaction. The mail task is woken
    /// once the request is answered (see `routes::changed`): waking it
    /// here, before the commit, would let it look too early and find
    /// nothing.
    fn queue_mail(
        &self,
        conn: &rusqlite::Connection,
        to: &str,
        subject: &str,
        body: &str,
    ) -> rusqlite::Result<()> {
        mail::enqueue(conn, to, subject, body, self.clock.now())
    }
}

/// Runs the board until the process is stopped.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let listen = config.listen;
    let board = Board::open(config, Arc::new(SystemClock))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on `{listen}`"))?;
    eprintln!("board: listening on http://{}", listener.local_addr()?);
    tokio::spawn(board.clone().background());
    board
        .serve_on(listener, stopped())
        .await
        .context("the board's server stopped")
}

/// Resolves when the process is asked to stop: Ctrl-C, or SIGTERM from the
/// engine stopping the container.
async fn stopped() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
