//! The plan in words, for people: one line per change, with its reasons.

use std::fmt::Write as _;

use super::{Action, Cleanup, ImageAction, Plan};

/// The plan as text; "nothing to do" when it is empty.
pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    for c in &plan.cleanup {
        match c {
            Cleanup::Remove { name } => {
                let _ = writeln!(
                    out,
                    "  clean   container {name} (left by an interrupted run)"
                );
            }
            Cleanup::Restore { from, to } => {
                let _ = writeln!(
                    out,
                    "  restore container {to} (kept as {from} by an interrupted run)"
                );
            }
        }
    }
    for i in &plan.images {
        let verb = match i.action {
            ImageAction::Pull => "pull",
            ImageAction::Build => "build",
            ImageAction::Keep => continue,
        };
        let _ = writeln!(
            out,
            "  {verb:<7} image {}{}",
            i.name,
            reason(i.reason.as_deref())
        );
    }
    for (what, changes) in [("network", &plan.networks), ("volume", &plan.volumes)] {
        for c in changes {
            if c.action == Action::Keep && c.reasons.is_empty() {
                continue;
            }
            let verb = if c.action == Action::Keep {
                "keep"
            } else {
                verb(c.action)
            };
            let _ = writeln!(out, "  {verb:<7} {what} {}{}", c.name, reasons(&c.reasons));
        }
    }
    for c in &plan.containers {
        if c.action == Action::Keep {
            continue;
        }
        let _ = writeln!(
            out,
            "  {:<7} container {}{}",
            verb(c.action),
            c.name,
            reasons(&c.reasons)
        );
    }
    for s in &plan.steps {
        let _ = writeln!(out, "  run     {} in {} ({})", s.doc, s.container, s.reason);
    }
    for v in &plan.stale_files_volumes {
        let _ = writeln!(
            out,
            "  remove  volume {v} (rendered files no container uses)"
        );
    }
    if out.is_empty() {
        let kept = plan
            .containers
            .iter()
            .filter(|c| c.action == Action::Keep)
            .count();
        return format!("nothing to do: {kept} containers up to date\n");
    }
    out
}

fn verb(action: Action) -> &'static str {
    match action {
        Action::Create => "create",
        Action::Replace => "replace",
        Action::Start => "start",
        Action::Remove => "remove",
        Action::Keep => "keep",
    }
}

fn reason(r: Option<&str>) -> String {
    r.map(|r| format!(" ({r})")).unwrap_or_default()
}

fn reasons(r: &[String]) -> String {
    if r.is_empty() {
        String::new()
    } else {
        format!(" ({})", r.join("; "))
    }
}
