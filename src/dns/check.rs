//! `voisin dns --check`: asks DNS for each record the association needs and
//! says which are in place, missing or different.
//!
//! Asking ([`Resolver`], the one place that sends packets) is kept apart from
//! comparing ([`compare`], pure), so the rules that decide "the same" are
//! tested without a network. Those rules follow what receivers do, not the
//! bytes: names ignore case and the trailing dot, a TXT record's strings are
//! joined before reading, SPF terms ignore case, DKIM and DMARC tags ignore
//! order and blanks.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use super::{Kind, Record, Value};

/// Why a question got no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// No server answered at all: nothing listens, or packets are lost.
    #[error("no answer from the DNS resolver {server}: {reason}")]
    Unreachable {
        /// The server asked last.
        server: String,
        /// What went wrong, as the system says it.
        reason: String,
    },
    /// The server answered, but with an error (SERVFAIL, REFUSED…).
    #[error("the DNS resolver answered {code}")]
    Failed {
        /// The response code.
        code: String,
    },
}

/// Something that answers DNS questions: the real [`Resolver`], or a table
/// in tests.
pub trait Lookup {
    /// The records of type `kind` at `name`; empty when there are none (the
    /// name does not exist, or has no record of that type).
    fn lookup(&self, name: &str, kind: Kind) -> Result<Vec<Value>, LookupError>;

    /// Who is asked, for messages.
    fn describe(&self) -> String;
}

/// A stub resolver: sends each question to recursive DNS servers over UDP
/// (TCP when the answer does not fit), in turn until one answers.
#[derive(Debug, Clone)]
pub struct Resolver {
    servers: Vec<SocketAddr>,
    timeout: Duration,
    attempts: u32,
}

/// Where the system's resolvers are listed.
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Large enough for a DKIM record, small enough to pass through networks
/// that drop fragments (the DNS flag day 2020 value).
const UDP_PAYLOAD: u16 = 1232;

impl Resolver {
    /// Asks only `server`.
    pub fn server(server: SocketAddr) -> Self {
        Self {
            servers: vec![server],
            timeout: Duration::from_secs(2),
            attempts: 2,
        }
    }

    /// Asks the servers the system uses (`/etc/resolv.conf`).
    pub fn system() -> Result<Self, LookupError> {
        let unreachable = |reason: String| LookupError::Unreachable {
            server: format!("of `{RESOLV_CONF}`"),
            reason,
        };
        let text = std::fs::read(RESOLV_CONF).map_err(|e| unreachable(e.to_string()))?;
        let config = resolv_conf::Config::parse(&text).map_err(|e| unreachable(e.to_string()))?;
        let servers: Vec<SocketAddr> = config
            .get_nameservers_or_local()
            .iter()
            .map(|ip| SocketAddr::new(IpAddr::from(ip), 53))
            .collect();
        Ok(Self {
            servers,
            timeout: Duration::from_secs(3),
            attempts: 2,
        })
    }

    fn ask(&self, server: SocketAddr, query: &Message) -> Result<Message, String> {
        let bytes = query.to_vec().map_err(|e| e.to_string())?;
        let bind: SocketAddr = if server.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let socket = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
        // Connected, so that a closed port comes back as an error at once
        // rather than as a timeout.
        socket.connect(server).map_err(|e| e.to_string())?;
        socket
            .set_read_timeout(Some(self.timeout))
            .map_err(|e| e.to_string())?;
        socket.send(&bytes).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 65535];
        loop {
            let n = socket.recv(&mut buf).map_err(|e| match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                    format!("no answer within {} s", self.timeout.as_secs())
                }
                _ => e.to_string(),
            })?;
            // A stray or forged packet is not the answer: wait for ours.
            let Ok(answer) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            if answer.metadata.id != query.metadata.id {
                continue;
            }
            if answer.metadata.truncation {
                return self.ask_tcp(server, &bytes);
            }
            return Ok(answer);
        }
    }

    fn ask_tcp(&self, server: SocketAddr, bytes: &[u8]) -> Result<Message, String> {
        let mut stream =
            TcpStream::connect_timeout(&server, self.timeout).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(self.timeout))
            .map_err(|e| e.to_string())?;
        let len = u16::try_from(bytes.len()).map_err(|e| e.to_string())?;
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend_from_slice(bytes);
        stream.write_all(&framed).map_err(|e| e.to_string())?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut buf).map_err(|e| e.to_string())?;
        Message::from_vec(&buf).map_err(|e| e.to_string())
    }
}

fn record_type(kind: Kind) -> RecordType {
    match kind {
        Kind::A => RecordType::A,
        Kind::Aaaa => RecordType::AAAA,
        Kind::Mx => RecordType::MX,
        Kind::Txt => RecordType::TXT,
        Kind::Cname => RecordType::CNAME,
        Kind::Srv => RecordType::SRV,
    }
}

/// A name as DNS gives it, the way [`Value`] holds names.
fn plain_name(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

/// Our value for a record DNS returned, when it is of a type we ask about.
pub fn value_of(data: &RData) -> Option<Value> {
    Some(match data {
        RData::A(a) => Value::Address(IpAddr::V4(a.0)),
        RData::AAAA(a) => Value::Address(IpAddr::V6(a.0)),
        RData::MX(mx) => Value::Mx {
            preference: mx.preference,
            exchange: plain_name(&mx.exchange),
        },
        RData::TXT(txt) => Value::Txt(
            txt.txt_data
                .iter()
                .map(|s| String::from_utf8_lossy(s))
                .collect(),
        ),
        RData::CNAME(c) => Value::Cname(plain_name(&c.0)),
        RData::SRV(srv) => Value::Srv {
            priority: srv.priority,
            weight: srv.weight,
            port: srv.port,
            target: plain_name(&srv.target),
        },
        _ => return None,
    })
}

impl Resolver {
    /// The records of type `rtype` at `name`, as DNS gives them.
    fn ask_all(&self, fqdn: &Name, rtype: RecordType) -> Result<Vec<RData>, LookupError> {
        let mut query = Message::query();
        query.metadata.recursion_desired = true;
        query.add_query(Query::query(fqdn.clone(), rtype));
        let mut edns = Edns::new();
        edns.set_max_payload(UDP_PAYLOAD);
        query.set_edns(edns);

        let mut last = LookupError::Unreachable {
            server: "(none listed)".to_string(),
            reason: format!("`{RESOLV_CONF}` lists no server"),
        };
        for _ in 0..self.attempts {
            for &server in &self.servers {
                match self.ask(server, &query) {
                    Ok(answer) => match answer.metadata.response_code {
                        ResponseCode::NoError | ResponseCode::NXDomain => {
                            return Ok(answer
                                .answers
                                .iter()
                                // A resolver follows CNAMEs and returns the
                                // chain; only the asked type is the answer.
                                .filter(|r| r.record_type() == rtype)
                                .map(|r| r.data.clone())
                                .collect());
                        }
                        code => {
                            last = LookupError::Failed {
                                code: code.to_string().to_ascii_uppercase(),
                            };
                        }
                    },
                    Err(reason) => {
                        last = LookupError::Unreachable {
                            server: server.to_string(),
                            reason,
                        };
                    }
                }
            }
        }
        Err(last)
    }

    /// The reverse names (PTR) of an address, lower case without the
    /// trailing dot; empty when it has none.
    pub fn reverse(&self, ip: IpAddr) -> Result<Vec<String>, LookupError> {
        let name = Name::from(ip);
        Ok(self
            .ask_all(&name, RecordType::PTR)?
            .iter()
            .filter_map(|d| match d {
                RData::PTR(ptr) => Some(plain_name(&ptr.0)),
                _ => None,
            })
            .collect())
    }
}

impl Lookup for Resolver {
    fn lookup(&self, name: &str, kind: Kind) -> Result<Vec<Value>, LookupError> {
        let fqdn = Name::from_ascii(format!("{name}.")).map_err(|e| LookupError::Failed {
            code: format!("nothing: `{name}` is not a name it can ask about ({e})"),
        })?;
        Ok(self
            .ask_all(&fqdn, record_type(kind))?
            .iter()
            .filter_map(value_of)
            .collect())
    }

    fn describe(&self) -> String {
        self.servers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The addresses (A and AAAA) DNS has for `host`: empty when it has none.
pub fn addresses(lookup: &impl Lookup, host: &str) -> Result<Vec<Value>, LookupError> {
    let mut found = lookup.lookup(host, Kind::A)?;
    found.extend(lookup.lookup(host, Kind::Aaaa)?);
    Ok(found)
}

/// How a record compares with DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// DNS says what the record says.
    Matches,
    /// DNS has nothing of the kind at that name.
    Missing,
    /// DNS has something else there.
    Different {
        /// What to do about it, beyond "change it".
        hint: Option<String>,
    },
    /// The resolver could not tell.
    Unknown {
        /// Why.
        reason: String,
    },
}

/// One record and what DNS says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The record the association needs.
    pub record: Record,
    /// How it compares.
    pub status: Status,
    /// What DNS has at that name and type, as zone files write it.
    pub found: Vec<String>,
}

/// Compares every record with what `lookup` answers. Fails only when the
/// resolver cannot be reached at all (it does not answer the first question).
pub fn compare(records: &[Record], lookup: &impl Lookup) -> Result<Vec<Finding>, LookupError> {
    // One question per name and type: the records of one set are judged together.
    let mut questions: BTreeMap<(String, Kind), Result<Vec<Value>, LookupError>> = BTreeMap::new();
    for r in records {
        let key = (r.name.clone(), r.kind());
        if questions.contains_key(&key) {
            continue;
        }
        let answer = lookup.lookup(&r.name, r.kind());
        // A resolver that does not answer the first question has already
        // had its retries: asking a dozen more would only make people wait.
        if questions.is_empty()
            && let Err(e @ LookupError::Unreachable { .. }) = answer
        {
            return Err(e);
        }
        questions.insert(key, answer);
    }

    Ok(records
        .iter()
        .map(|record| {
            let answer = &questions[&(record.name.clone(), record.kind())];
            let (status, found) = match answer {
                Err(e) => (
                    Status::Unknown {
                        reason: e.to_string(),
                    },
                    Vec::new(),
                ),
                Ok(found) => {
                    let expected: Vec<&Value> = records
                        .iter()
                        .filter(|r| r.name == record.name && r.kind() == record.kind())
                        .map(|r| &r.value)
                        .collect();
                    judge(&record.value, &expected, found)
                }
            };
            Finding {
                record: record.clone(),
                status,
                found,
            }
        })
        .collect())
}

/// Judges one expected value against what DNS has at its name and type;
/// `set` is every value expected there (one address per host, say).
fn judge(value: &Value, set: &[&Value], found: &[Value]) -> (Status, Vec<String>) {
    let shown =
        |values: &[&Value]| -> Vec<String> { values.iter().map(|v| v.zone_data()).collect() };
    if let Value::Txt(text) = value {
        // Several TXT records share a name (the domain's SPF beside a site
        // verification, say): only those of the same protocol count.
        let tag = txt_protocol(text);
        let same: Vec<&Value> = found
            .iter()
            .filter(|v| matches!(v, Value::Txt(t) if txt_protocol(t) == tag))
            .collect();
        let found_shown = shown(&same);
        if same.is_empty() {
            return (Status::Missing, found_shown);
        }
        let equal = same
            .iter()
            .filter(|v| matches!(v, Value::Txt(t) if same_txt(text, t)))
            .count();
        let status = if equal > 0 && same.len() == 1 {
            Status::Matches
        } else if same.len() > 1 {
            Status::Different {
                hint: Some(format!(
                    "there are {} `{tag}` records at this name and receivers then ignore them all: keep only this one",
                    same.len()
                )),
            }
        } else if same
            .iter()
            .any(|v| matches!(v, Value::Txt(t) if t.contains('"')))
        {
            Status::Different {
                hint: Some(
                    "the value holds quote marks: paste it without the quotes, as one piece"
                        .to_string(),
                ),
            }
        } else {
            Status::Different { hint: None }
        };
        return (status, found_shown);
    }

    let all: Vec<&Value> = found.iter().collect();
    let found_shown = shown(&all);
    if found.is_empty() {
        return (Status::Missing, found_shown);
    }
    // The preference only matters between several exchangers: with a
    // partner's backup MX, ours must come first.
    let several = set.len() > 1;
    let key = |v: &Value| -> Value {
        match v {
            Value::Mx { exchange, .. } if !several => Value::Mx {
                preference: 0,
                exchange: exchange.clone(),
            },
            other => other.clone(),
        }
    };
    let wanted: BTreeSet<Value> = set.iter().map(|v| key(v)).collect();
    let have: BTreeSet<Value> = found.iter().map(key).collect();
    if wanted == have {
        (Status::Matches, found_shown)
    } else if have.is_superset(&wanted) {
        (
            Status::Different {
                hint: Some(
                    "remove the other records of this type at this name (a registrar's parking page, an old server)"
                        .to_string(),
                ),
            },
            found_shown,
        )
    } else {
        (Status::Different { hint: None }, found_shown)
    }
}

/// The protocol a TXT record speaks, from its first tag: `v=spf1`,
/// `v=DKIM1`, `v=DMARC1`; lower case. Empty for other text.
fn txt_protocol(text: &str) -> String {
    let text = text.trim_start_matches(['"', ' ']);
    let first = text
        .split([';', ' '])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if first.starts_with("v=") {
        first
    } else {
        String::new()
    }
}

/// True when two TXT values say the same to a receiver.
pub fn same_txt(expected: &str, found: &str) -> bool {
    match txt_protocol(expected).as_str() {
        // SPF: terms separated by blanks; mechanisms ignore case.
        "v=spf1" => {
            let terms = |t: &str| {
                t.split_whitespace()
                    .map(str::to_ascii_lowercase)
                    .collect::<Vec<_>>()
            };
            terms(expected) == terms(found)
        }
        // DKIM (RFC 6376) and DMARC (RFC 7489): `tag=value` lists where
        // blanks around and inside values (the base64 key) do not count.
        "v=dkim1" => tags(expected, false) == tags(found, false),
        "v=dmarc1" => tags(expected, true) == tags(found, true),
        _ => expected == found,
    }
}

fn tags(text: &str, fold_case: bool) -> BTreeMap<String, String> {
    text.split(';')
        .filter_map(|part| {
            let (tag, value) = part.split_once('=')?;
            let value: String = value.chars().filter(|c| !c.is_whitespace()).collect();
            let value = if fold_case {
                value.to_ascii_lowercase()
            } else {
                value
            };
            Some((tag.trim().to_ascii_lowercase(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table of DNS answers.
    struct Table(BTreeMap<(String, Kind), Vec<Value>>);

    impl Lookup for Table {
        fn lookup(&self, name: &str, kind: Kind) -> Result<Vec<Value>, LookupError> {
            Ok(self
                .0
                .get(&(name.to_string(), kind))
                .cloned()
                .unwrap_or_default())
        }
        fn describe(&self) -> String {
            "a table".to_string()
        }
    }

    struct Down;

    impl Lookup for Down {
        fn lookup(&self, _: &str, _: Kind) -> Result<Vec<Value>, LookupError> {
            Err(LookupError::Unreachable {
                server: "127.0.0.1:53".to_string(),
                reason: "connection refused".to_string(),
            })
        }
        fn describe(&self) -> String {
            "nobody".to_string()
        }
    }

    fn record(name: &str, value: Value) -> Record {
        Record::new(name, value, "test")
    }

    fn ip(text: &str) -> Value {
        Value::Address(text.parse().expect("an address"))
    }

    fn statuses(records: &[Record], table: &Table) -> Vec<Status> {
        compare(records, table)
            .expect("answered")
            .into_iter()
            .map(|f| f.status)
            .collect()
    }

    #[test]
    fn txt_records_compare_joined_and_by_meaning() {
        assert!(same_txt("v=spf1 mx -all", "v=spf1  MX -all"));
        assert!(!same_txt("v=spf1 mx -all", "v=spf1 mx ~all"));
        assert!(same_txt(
            "v=DKIM1; k=rsa; p=ABCD",
            "v=DKIM1;k=rsa; p=AB CD;"
        ));
        assert!(!same_txt(
            "v=DKIM1; k=rsa; p=ABCD",
            "v=DKIM1; k=rsa; p=abcd"
        ));
        assert!(same_txt(
            "v=DMARC1; p=quarantine; rua=mailto:a@b.org",
            "v=DMARC1; rua=mailto:A@b.org; p=Quarantine"
        ));
        assert!(!same_txt(
            "v=DMARC1; p=quarantine; rua=mailto:a@b.org",
            "v=DMARC1; p=none; rua=mailto:a@b.org"
        ));
    }

    #[test]
    fn a_txt_record_among_others_at_the_same_name_is_found() {
        let records = [record("amis.org", Value::Txt("v=spf1 mx -all".into()))];
        let table = Table(BTreeMap::from([(
            ("amis.org".to_string(), Kind::Txt),
            vec![
                Value::Txt("google-site-verification=xyz".into()),
                Value::Txt("v=spf1 mx -all".into()),
            ],
        )]));
        assert_eq!(statuses(&records, &table), [Status::Matches]);
    }

    #[test]
    fn quoted_or_duplicated_txt_values_are_different_with_a_hint() {
        let records = [record("amis.org", Value::Txt("v=spf1 mx -all".into()))];
        let quoted = Table(BTreeMap::from([(
            ("amis.org".to_string(), Kind::Txt),
            vec![Value::Txt("\"v=spf1 mx -all\"".into())],
        )]));
        let [Status::Different { hint: Some(hint) }] = &statuses(&records, &quoted)[..] else {
            panic!("a quoted value is different");
        };
        assert!(hint.contains("without the quotes"), "{hint}");

        let twice = Table(BTreeMap::from([(
            ("amis.org".to_string(), Kind::Txt),
            vec![
                Value::Txt("v=spf1 mx -all".into()),
                Value::Txt("v=spf1 a -all".into()),
            ],
        )]));
        let [Status::Different { hint: Some(hint) }] = &statuses(&records, &twice)[..] else {
            panic!("two SPF records are different");
        };
        assert!(hint.contains("keep only this one"), "{hint}");
    }

    #[test]
    fn names_compare_without_case_or_trailing_dot() {
        use hickory_proto::rr::rdata::{CNAME, MX};
        let mx = RData::MX(MX::new(
            20,
            Name::from_ascii("Mail.Amis.ORG.").expect("a name"),
        ));
        let cname = RData::CNAME(CNAME(Name::from_ascii("MAIL.amis.org").expect("a name")));
        let records = [
            record(
                "amis.org",
                Value::Mx {
                    preference: 10,
                    exchange: "mail.amis.org".into(),
                },
            ),
            record("autoconfig.amis.org", Value::Cname("mail.amis.org".into())),
        ];
        let table = Table(BTreeMap::from([
            (
                ("amis.org".to_string(), Kind::Mx),
                vec![value_of(&mx).expect("an MX")],
            ),
            (
                ("autoconfig.amis.org".to_string(), Kind::Cname),
                vec![value_of(&cname).expect("a CNAME")],
            ),
        ]));
        assert_eq!(
            statuses(&records, &table),
            [Status::Matches, Status::Matches]
        );
    }

    #[test]
    fn missing_different_and_extra_addresses_are_told_apart() {
        let records = [
            record("mail.amis.org", ip("203.0.113.10")),
            record("cloud.amis.org", ip("203.0.113.10")),
            record("pret.amis.org", ip("203.0.113.10")),
        ];
        let table = Table(BTreeMap::from([
            (
                ("cloud.amis.org".to_string(), Kind::A),
                vec![ip("198.51.100.7")],
            ),
            (
                ("pret.amis.org".to_string(), Kind::A),
                vec![ip("203.0.113.10"), ip("198.51.100.7")],
            ),
        ]));
        let findings = compare(&records, &table).expect("answered");
        assert_eq!(findings[0].status, Status::Missing);
        assert_eq!(findings[1].status, Status::Different { hint: None });
        assert_eq!(findings[1].found, ["198.51.100.7"]);
        assert!(matches!(
            &findings[2].status,
            Status::Different { hint: Some(h) } if h.contains("remove the other")
        ));
    }

    #[test]
    fn with_a_backup_mx_the_preferences_must_keep_ours_first() {
        let mx = |preference, exchange: &str| Value::Mx {
            preference,
            exchange: exchange.into(),
        };
        let records = [
            record("amis.org", mx(10, "mail.amis.org")),
            record("amis.org", mx(20, "mx2.partner.org")),
        ];
        let answer = |values| {
            Table(BTreeMap::from([(
                ("amis.org".to_string(), Kind::Mx),
                values,
            )]))
        };
        let right = answer(vec![mx(20, "mx2.partner.org"), mx(10, "mail.amis.org")]);
        assert_eq!(
            statuses(&records, &right),
            [Status::Matches, Status::Matches]
        );
        let swapped = answer(vec![mx(10, "mx2.partner.org"), mx(20, "mail.amis.org")]);
        assert!(
            statuses(&records, &swapped)
                .iter()
                .all(|s| matches!(s, Status::Different { .. }))
        );
        // Alone, an MX matches whatever its preference.
        let alone = [record("amis.org", mx(10, "mail.amis.org"))];
        assert_eq!(
            statuses(&alone, &answer(vec![mx(5, "mail.amis.org")])),
            [Status::Matches]
        );
    }

    #[test]
    fn a_resolver_that_answers_nothing_is_an_error() {
        let records = [record("mail.amis.org", ip("203.0.113.10"))];
        assert!(matches!(
            compare(&records, &Down),
            Err(LookupError::Unreachable { .. })
        ));
    }
}
