//! The board's own HTTP/1 server loop, in place of `axum::serve`, for what
//! a service facing the internet needs and `axum::serve` does not offer:
//! a deadline for a request's headers, a deadline for each read of its body
//! and for the whole body, and a cap on open connections per client and in
//! all. A slow or greedy client is cut off instead of holding sockets and
//! memory.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use futures_util::StreamExt as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use super::config::Config;

/// How long open requests may take to finish once the board is asked to
/// stop.
const DRAIN: Duration = Duration::from_secs(10);

/// How much a connection may hold of what it writes before its client
/// takes it: a chunk of a photo, or a page. Above hyper's default (some
/// 400 KB), 200 clients fetching a large photo held 80 MB in queued
/// chunks; the kernel's socket buffer holds what follows.
const WRITE_BUFFER: usize = super::photos::PHOTO_CHUNK;

/// Serves `app` on `listener` until `stop` resolves.
pub async fn run(
    listener: TcpListener,
    app: Router,
    config: &Config,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let clients = Arc::new(Clients::default());
    let total = Arc::new(Semaphore::new(config.max_connections));
    let (read_timeout, body_deadline) = (config.read_timeout, config.body_deadline);
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        // Out of file descriptors, or a connection reset before it was
        // accepted: wait a moment rather than spin.
        let Ok((stream, peer)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        // The proxy carries every member's connections: it is not capped.
        let proxy = config.trusted_proxies.iter().any(|n| n.contains(peer.ip()));
        let cap = if proxy {
            usize::MAX
        } else {
            config.max_connections_per_client
        };
        let Some(slot) = Clients::take(&clients, peer.ip(), cap) else {
            continue;
        };
        let Ok(permit) = total.clone().try_acquire_owned() else {
            continue;
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let (mut parts, body) = req.into_parts();
            parts.extensions.insert(ConnectInfo::<SocketAddr>(peer));
            let body = timed_body(body, read_timeout, body_deadline);
            app.clone().oneshot(hyper::Request::from_parts(parts, body))
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(read_timeout)
            .max_buf_size(WRITE_BUFFER)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop((slot, permit));
        });
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN) => {}
    }
    Ok(())
}

/// A request body whose every read must come within `idle` and whole
/// within `deadline`; past either it ends in an error, the handler
/// refuses the request, and the connection closes.
fn timed_body(body: Incoming, idle: Duration, deadline: Duration) -> Body {
    let until = Instant::now() + deadline;
    let data = Body::new(body).into_data_stream();
    let timed = futures_util::stream::unfold(Some(data), move |data| async move {
        let mut data = data?;
        let wait = idle.min(until.saturating_duration_since(Instant::now()));
        match tokio::time::timeout(wait, data.next()).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(data))),
            Ok(Some(Err(err))) => Some((Err(axum::Error::new(err)), None)),
            Ok(None) => None,
            Err(_) => Some((Err(axum::Error::new(SlowBody)), None)),
        }
    });
    // Fused: a reader that looks again after the end (the CSRF guard
    // chains what it has not read back onto the body) must get the end
    // again, not a panic of `unfold`.
    Body::from_stream(timed.fuse())
}

/// A client sent its body too slowly.
#[derive(Debug)]
struct SlowBody;

impl std::fmt::Display for SlowBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body came too slowly")
    }
}

impl std::error::Error for SlowBody {}

/// Open connections per client address.
#[derive(Debug, Default)]
struct Clients {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection of a client; dropping it frees the place.
struct Slot {
    clients: Arc<Clients>,
    ip: IpAddr,
}

impl Clients {
    /// A place for one more connection from `ip`, unless it has `cap`.
    fn take(clients: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<Slot> {
        let mut open = clients.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(Slot {
            clients: clients.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .clients
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}
