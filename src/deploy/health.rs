//! Waiting for a container to work. The engine of these machines (API 1.41)
//! checks health only every `interval`, which would make every deploy wait
//! seconds per container; voisin runs the same check itself, often at first
//! and then less, within a bound the check's own settings give.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;

use super::DeployError;
use crate::engine::Engine;
use crate::render::state::ContainerSpec;

/// How long a container may take, from its health settings: the start
/// period, then every retry's interval and timeout; at least thirty seconds,
/// so that a busy machine does not fail a container that only starts slowly.
pub fn bound(spec: &ContainerSpec) -> Duration {
    let secs = spec.health.as_ref().map_or(10, |h| {
        h.start_period_seconds
            + u64::from(h.retries.max(1)) * (h.interval_seconds + h.timeout_seconds)
    });
    Duration::from_secs(secs.max(30))
}

/// Waits until `name` (created from `spec`) is healthy, or running when it
/// has no check. A container that stops, or does not become healthy in
/// time, fails with the end of its log.
pub async fn wait(engine: &Engine, spec: &ContainerSpec, name: &str) -> Result<(), DeployError> {
    let deadline = Instant::now() + bound(spec);
    let mut pause = Duration::from_millis(50);
    loop {
        let Some(c) = engine.container(name).await? else {
            return Err(DeployError::Unhealthy(format!(
                "`{name}` disappeared while starting"
            )));
        };
        // The restart policy brings a crashing container back again and
        // again: its first exit is the answer.
        if !c.state.running || c.state.status == "restarting" || c.state.restarts > 0 {
            return Err(DeployError::Unhealthy(format!(
                "`{name}` stopped while starting (exit code {}){}",
                c.state.exit_code,
                last_lines(engine, name).await
            )));
        }
        match &spec.health {
            None => return Ok(()),
            Some(h) => match engine.exec(name, &h.test, None, &[], None).await {
                Ok(out) if out.code == 0 => return Ok(()),
                Ok(_) => {}
                // Stopped between the look and the check: the next look says so.
                Err(e) if e.is_conflict() => {}
                Err(e) => return Err(e.into()),
            },
        }
        if Instant::now() >= deadline {
            return Err(DeployError::Unhealthy(format!(
                "`{name}` did not become healthy within {} s{}",
                bound(spec).as_secs(),
                last_lines(engine, name).await
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// The last lines of a container's log, indented, for an error message.
pub async fn last_lines(engine: &Engine, name: &str) -> String {
    let mut lines = Vec::new();
    let mut stream = std::pin::pin!(engine.logs(name, false, Some(15), None));
    while let Some(Ok(line)) = stream.next().await {
        lines.push(String::from_utf8_lossy(&line.bytes).trim_end().to_string());
    }
    if lines.is_empty() {
        "; its log is empty".into()
    } else {
        format!("; the end of its log:\n    {}", lines.join("\n    "))
    }
}
