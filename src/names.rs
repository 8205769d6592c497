//! Names people write that the outside world must accept: DNS names,
//! mail addresses, member ids. Each check says what is wrong in words a
//! volunteer can act on.

/// Why a name was refused.
pub type Refusal = String;

/// Checks a fully qualified DNS name such as `pret.amis-quartier.org`.
pub fn check_dns_name(name: &str) -> Result<(), Refusal> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name.len() > 253 {
        return Err(format!(
            "it is {} characters long; DNS allows 253",
            name.len()
        ));
    }
    if !name.is_ascii() {
        // An internationalised name is written in DNS in its ASCII
        // (punycode) form; say what that is.
        return Err(match idna::domain_to_ascii(name) {
            Ok(ascii) if ascii != name => {
                format!("it has letters outside ASCII; DNS writes it `{ascii}`, write that instead")
            }
            _ => "it has characters DNS cannot hold".into(),
        });
    }
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        return Err("it has upper-case letters; write it in lower case".into());
    }
    if name.ends_with('.') {
        return Err("it ends with a dot; leave the final dot out".into());
    }
    if name.contains("://") {
        return Err("it is a URL; give the host name alone".into());
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return Err(
            "it has a single label; a public name has at least two, like `example.org`".into(),
        );
    }
    for label in &labels {
        if label.is_empty() {
            return Err("it has an empty label (two dots in a row, or a leading dot)".into());
        }
        if label.len() > 63 {
            return Err(format!("the label `{label}` is longer than 63 characters"));
        }
        if let Some(bad) = label
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(format!(
                "`{bad}` is not allowed; use letters, digits, `-` and `.`"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("the label `{label}` starts or ends with `-`"));
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("it ends in a number; an IP address is not a host name".into());
    }
    Ok(())
}

/// Checks a mail address and returns its local part and domain.
pub fn check_email(address: &str) -> Result<(&str, &str), Refusal> {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Err("it has no `@`".into());
    };
    check_local_part(local)?;
    check_dns_name(domain).map_err(|why| format!("its domain `{domain}` is not valid: {why}"))?;
    Ok((local, domain))
}

/// Checks the part of a mail address before the `@`.
pub fn check_local_part(local: &str) -> Result<(), Refusal> {
    if local.is_empty() {
        return Err("nothing stands before the `@`".into());
    }
    if local.len() > 64 {
        return Err("the part before `@` is longer than 64 characters".into());
    }
    if let Some(bad) = local
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._%+-".contains(*c)))
    {
        return Err(format!("`{bad}` is not allowed before the `@`"));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("dots before the `@` must stand between other characters".into());
    }
    Ok(())
}

/// Checks a member id: it becomes an account name in every service, so it
/// is kept to what all of them accept.
pub fn check_member_id(id: &str) -> Result<(), Refusal> {
    if id.is_empty() || id.len() > 32 {
        return Err("it must be 1 to 32 characters long".into());
    }
    if !id.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("it must start with a lower-case letter".into());
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(*c)))
    {
        return Err(format!(
            "`{bad}` is not allowed; use lower-case letters, digits, `.`, `_` and `-`"
        ));
    }
    Ok(())
}

/// A valid member id made from what a person wrote (an id that was refused,
/// or a full name): accents dropped, lower case, spaces as `-`. `None` when
/// nothing usable is left.
pub fn suggest_member_id(text: &str) -> Option<String> {
    let mut id = String::new();
    for c in text.trim().chars().flat_map(char::to_lowercase) {
        let folded = match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
            'ç' | 'ć' | 'č' => "c",
            'ď' | 'đ' => "d",
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => "e",
            'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' | 'ı' => "i",
            'ł' | 'ľ' | 'ĺ' => "l",
            'ñ' | 'ń' | 'ň' => "n",
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => "o",
            'ŕ' | 'ř' => "r",
            'ś' | 'š' | 'ş' => "s",
            'ť' | 'ţ' => "t",
            'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' | 'ų' => "u",
            'ý' | 'ÿ' => "y",
            'ź' | 'ż' | 'ž' => "z",
            'œ' => "oe",
            'æ' => "ae",
            'ß' => "ss",
            c if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_' => {
                id.push(c);
                continue;
            }
            _ => "-",
        };
        id.push_str(folded);
    }
    let mut collapsed = String::new();
    for part in id.split('-').filter(|p| !p.is_empty()) {
        if !collapsed.is_empty() {
            collapsed.push('-');
        }
        collapsed.push_str(part);
    }
    let start = collapsed.find(|c: char| c.is_ascii_lowercase())?;
    let id: String = collapsed[start..].chars().take(32).collect();
    let id = id.trim_end_matches(['-', '.', '_']).to_string();
    check_member_id(&id).is_ok().then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_host_names() {
        assert!(check_dns_name("amis-quartier.org").is_ok());
        assert!(check_dns_name("pret.amis-quartier.org").is_ok());
        assert!(check_dns_name("xn--caf-dma.fr").is_ok());
    }

    #[test]
    fn shows_unicode_names_in_their_ascii_form() {
        let why = check_dns_name("café.fr").expect_err("not ASCII");
        assert!(why.contains("`xn--caf-dma.fr`"), "{why}");
    }

    #[test]
    fn refuses_what_dns_refuses() {
        for bad in [
            "",
            "localhost",
            "a..b",
            "-a.org",
            "a-.org",
            "a_b.org",
            "A.org",
            "1.2.3.4",
            "a.org.",
            "https://a.org",
        ] {
            assert!(check_dns_name(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn splits_mail_addresses() {
        assert_eq!(check_email("alice@amis.org"), Ok(("alice", "amis.org")));
        assert!(check_email("alice").is_err());
        assert!(check_email("a..b@amis.org").is_err());
        assert!(check_email("alice@amis").is_err());
    }

    #[test]
    fn suggests_ids_without_accents_or_capitals() {
        assert_eq!(suggest_member_id("Loïc").as_deref(), Some("loic"));
        assert_eq!(
            suggest_member_id("Chloé Lefèvre").as_deref(),
            Some("chloe-lefevre")
        );
        assert_eq!(
            suggest_member_id("Jean-Luc  O'Brien").as_deref(),
            Some("jean-luc-o-brien")
        );
        assert_eq!(suggest_member_id("1042"), None);
        assert_eq!(suggest_member_id("  "), None);
    }

    #[test]
    fn member_ids_are_account_names() {
        assert!(check_member_id("alice").is_ok());
        assert!(check_member_id("jean-luc.p").is_ok());
        assert!(check_member_id("Alice").is_err());
        assert!(check_member_id("1alice").is_err());
        assert!(check_member_id("al ice").is_err());
    }
}
