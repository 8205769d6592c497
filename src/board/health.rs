//! `voisin board healthcheck`: the container's health check. The image
//! holds only the voisin executable (no curl), so voisin asks its own
//! `/healthz` with a few lines of HTTP.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::Context as _;

/// Succeeds when the board listening on `listen` answers `/healthz` with 200.
pub fn check(listen: SocketAddr) -> anyhow::Result<()> {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let timeout = Duration::from_secs(3);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("nothing answers on `{addr}`"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let status = String::from_utf8_lossy(&answer);
    let line = status.lines().next().unwrap_or("");
    anyhow::ensure!(
        line.split(' ').nth(1) == Some("200"),
        "`/healthz` answered `{line}`"
    );
    Ok(())
}
