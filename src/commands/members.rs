//! `voisin members credentials ID`: one member's initial credentials, for
//! the admin to hand over. The one command that prints a secret.

use std::io::Write as _;

use crate::cli::{Format, GlobalArgs, MembersCommand};
use crate::diagnostic::did_you_mean;
use crate::{Outcome, UsageError};

/// Runs `members credentials`.
pub fn run(global: &GlobalArgs, command: &MembersCommand) -> anyhow::Result<Outcome> {
    let MembersCommand::Credentials { id } = command;
    let mut bundle = match super::load_bundle(global)? {
        Ok(b) => b,
        Err(outcome) => return Ok(outcome),
    };
    let Some(member) = bundle
        .manifest
        .members
        .iter()
        .find(|m| &m.id == id)
        .cloned()
    else {
        let hint = did_you_mean(id, bundle.manifest.members.iter().map(|m| m.id.as_str()))
            .unwrap_or_else(|| "member ids are the `id:` of each entry under `members:`".into());
        return Err(UsageError::new(
            format!("no member `{id}` in `{}`", bundle.path.display()),
            Some(hint),
        )
        .into());
    };
    // The password (and the hashes every service needs) exist once rendered.
    crate::render::render(&bundle.manifest, &bundle.catalog, &mut bundle.secrets)?;
    bundle.secrets.save()?;
    let password = crate::render::context::member_password(&bundle.secrets, id)
        .ok_or_else(|| anyhow::anyhow!("the member's password was not generated"))?;
    let hosts: Vec<(String, String)> = bundle
        .manifest
        .services
        .iter()
        .filter_map(|(role, s)| s.host.clone().map(|h| (role.clone(), h)))
        .collect();
    let mut out = std::io::stdout().lock();
    if global.format == Format::Json {
        let json = serde_json::json!({
            "id": member.id,
            "name": member.name,
            "mailbox": member.mailbox,
            "password": password.expose(),
            "services": hosts.iter().map(|(r, h)| (r.clone(), format!("https://{h}"))).collect::<std::collections::BTreeMap<_, _>>(),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
    } else {
        writeln!(out, "{} ({})", member.name, member.id)?;
        writeln!(out, "  sign-in name:     {}", member.id)?;
        if let Some(mailbox) = &member.mailbox {
            writeln!(
                out,
                "  mailbox:          {mailbox} (mail clients sign in with the address)"
            )?;
        }
        writeln!(out, "  initial password: {}", password.expose())?;
        for (role, host) in &hosts {
            writeln!(out, "  {role:<17} https://{host}")?;
        }
        writeln!(
            out,
            "Hand this over privately; the member should change the password at first sign-in."
        )?;
    }
    Ok(Outcome::Success)
}
