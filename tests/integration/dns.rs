//! `voisin dns` and `voisin dns --check`, through the real binary. The
//! checks ask a stub DNS server that each test starts on 127.0.0.1 with an
//! ephemeral UDP port: no packet leaves the machine. Manifests are copied
//! into a temporary folder so that the DKIM key lands there.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use serde_json::Value as Json;

use crate::support::{Voisin, root};

/// A copy of `examples/NAME` in a fresh temporary folder.
pub fn example(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    std::fs::copy(root().join("examples").join(name), &path).expect("copy the example");
    (dir, path)
}

fn dns(manifest: &Path) -> Voisin {
    Voisin::new(["dns", "-f"]).arg(manifest)
}

/// The records `voisin dns --format json` prints.
pub fn records(manifest: &Path) -> Vec<Json> {
    let run = dns(manifest).arg("--format").arg("json").run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.json()["records"]
        .as_array()
        .expect("a list of records")
        .clone()
}

pub fn name(text: &str) -> Name {
    Name::from_ascii(text).expect("a DNS name")
}

/// A record as DNS carries it, from its JSON form. TXT values are cut into
/// 100-byte strings, not voisin's 255, so the check must join them.
pub fn wire(record: &Json) -> Record {
    let text = |key: &str| record[key].as_str().expect("a string field");
    let value = text("value");
    let fields: Vec<&str> = value.split(' ').collect();
    let data = match text("type") {
        "A" => RData::A(A(value.parse().expect("IPv4"))),
        "AAAA" => RData::AAAA(AAAA(value.parse().expect("IPv6"))),
        "MX" => RData::MX(MX::new(
            fields[0].parse().expect("preference"),
            name(fields[1]),
        )),
        "TXT" => RData::TXT(TXT::new(
            value
                .as_bytes()
                .chunks(100)
                .map(|c| String::from_utf8(c.to_vec()).expect("ASCII"))
                .collect(),
        )),
        "CNAME" => RData::CNAME(CNAME(name(value))),
        "SRV" => RData::SRV(SRV::new(
            fields[0].parse().expect("priority"),
            fields[1].parse().expect("weight"),
            fields[2].parse().expect("port"),
            name(fields[3]),
        )),
        other => panic!("voisin printed a record of type {other}"),
    };
    Record::from_rdata(name(text("name")), 3600, data)
}

/// A DNS server on loopback that answers from a fixed list of records, as
/// an authoritative server would, until dropped.
pub struct StubDns {
    pub address: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl StubDns {
    pub fn serve(zone: Vec<Record>) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("a loopback port");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let address = socket.local_addr().expect("address");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stopped.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let answer = answer(&zone, &query);
                let bytes = answer.to_vec().expect("an answer encodes");
                let _ = socket.send_to(&bytes, from);
            }
        });
        Self { address, stop }
    }
}

impl Drop for StubDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn answer(zone: &[Record], query: &Message) -> Message {
    let mut answer = Message::response(query.metadata.id, OpCode::Query);
    answer.metadata.authoritative = true;
    answer.metadata.recursion_desired = query.metadata.recursion_desired;
    let Some(question) = query.queries.first() else {
        answer.metadata.response_code = ResponseCode::FormErr;
        return answer;
    };
    answer.add_query(question.clone());
    let asked = question.name().to_lowercase();
    let at_name: Vec<&Record> = zone
        .iter()
        .filter(|r| r.name.to_lowercase() == asked)
        .collect();
    if at_name.is_empty() {
        answer.metadata.response_code = ResponseCode::NXDomain;
    }
    answer.add_answers(
        at_name
            .into_iter()
            .filter(|r| r.record_type() == question.query_type())
            .cloned(),
    );
    answer
}

/// A loopback port where nothing listens.
fn closed_port() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("a loopback port");
    socket.local_addr().expect("address")
}

fn check(manifest: &Path, server: SocketAddr) -> Voisin {
    dns(manifest)
        .arg("--check")
        .arg("--resolver")
        .arg(server.to_string())
}

#[test]
fn prints_every_record_as_zone_file_lines_with_their_purpose() {
    let (dir, manifest) = example("full-association.yaml");
    let run = dns(&manifest).run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let words: Vec<String> = run
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for expected in [
        "$ORIGIN amis-quartier.org.",
        "mail 3600 IN A 203.0.113.10",
        "pret 3600 IN AAAA 2001:db8::10",
        "@ 3600 IN MX 10 mail.amis-quartier.org.",
        "@ 3600 IN TXT \"v=spf1 mx ip4:203.0.113.10 ip6:2001:db8::10 -all\"",
        "_dmarc 3600 IN TXT \"v=DMARC1; p=quarantine; rua=mailto:bureau@amis-quartier.org\"",
        "_submission._tcp 3600 IN SRV 0 1 587 mail.amis-quartier.org.",
        "; DMARC: mail that fails SPF and DKIM goes to spam; reports go to bureau@amis-quartier.org",
    ] {
        assert!(
            words.iter().any(|l| l == expected),
            "no line `{expected}` in:\n{}",
            run.stdout
        );
    }
    assert!(
        words
            .iter()
            .any(|l| l.starts_with("mail._domainkey 3600 IN TXT ( \"v=DKIM1; k=rsa; p=MIIB")),
        "{}",
        run.stdout
    );
    assert!(dir.path().join(".voisin/secrets.yaml").exists());
    assert!(!run.stdout.contains("PRIVATE KEY") && !run.stderr.contains("PRIVATE KEY"));
}

#[test]
fn the_dkim_record_is_the_stored_key_and_stays_the_same() {
    use base64::Engine as _;
    use rsa::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _};
    use rsa::sha2::{Digest as _, Sha256};

    let (dir, manifest) = example("mail-only.yaml");
    let dkim = |records: &[Json]| -> String {
        records
            .iter()
            .find(|r| r["name"] == "mail._domainkey.chorale-canal.example.org.")
            .expect("a DKIM record")["value"]
            .as_str()
            .expect("text")
            .to_string()
    };
    let first = dkim(&records(&manifest));
    assert_eq!(dkim(&records(&manifest)), first, "the key is made once");

    let store = voisin::secrets::Store::open(&dir.path().join(".voisin"), None).expect("secrets");
    let private = store
        .get("mail.dkim_private_key")
        .expect("the key is stored");
    assert!(!first.contains(private.expose()));
    let private = rsa::PrivateKey::from_pkcs8_pem(private.expose()).expect("a PKCS#8 key");

    let p = first
        .split(';')
        .find_map(|tag| tag.trim().strip_prefix("p="))
        .expect("a `p=` tag");
    let der = base64::engine::general_purpose::STANDARD
        .decode(p)
        .expect("base64");
    let public = rsa::PublicKey::from_public_key_der(&der).expect("a public key");

    let digest = Sha256::digest(b"From: marie@chorale-canal.example.org");
    let signature = private
        .sign_with_rng(&mut getrandom::SysRng, rsa::Pss::<Sha256>::new(), &digest)
        .expect("signs");
    public
        .verify(rsa::Pss::<Sha256>::new(), &digest, &signature)
        .expect("the printed key verifies what the stored key signs");
}

#[test]
fn board_only_needs_no_mail_records_and_no_key() {
    let (dir, manifest) = example("board-only.yaml");
    let run = dns(&manifest).arg("--format").arg("json").run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["version"], 1);
    assert_eq!(report["records"], serde_json::json!([]));
    assert!(
        report["notes"][0]["hint"]
            .as_str()
            .expect("a hint")
            .contains("public_address")
    );
    assert!(
        run.stderr.contains("hint: add `public_address"),
        "{}",
        run.stderr
    );
    assert!(!dir.path().join(".voisin").exists());
}

#[test]
fn refuses_an_invalid_manifest_with_its_diagnostics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = dir.path().join("voisin.yaml");
    std::fs::copy(
        root().join("tests/manifests/invalid/misspelt-entry.yaml"),
        &manifest,
    )
    .expect("copy");
    let run = dns(&manifest).run();
    assert_eq!(run.code, 1);
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr.contains("error[unknown-entry]"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("is not valid"), "{}", run.stderr);
}

#[test]
fn check_passes_when_dns_has_every_record_whatever_the_case_and_string_split() {
    let (_dir, manifest) = example("full-association.yaml");
    let mut zone: Vec<Record> = records(&manifest).iter().map(wire).collect();
    // DNS names ignore case, whatever the registrar's panel shows.
    for record in &mut zone {
        if let RData::MX(mx) = &mut record.data {
            mx.exchange = name("MAIL.Amis-Quartier.ORG.");
        }
    }
    let server = StubDns::serve(zone);
    let run = check(&manifest, server.address).run();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("13 in place, 0 missing, 0 different"),
        "{}",
        run.stdout
    );
}

#[test]
fn check_reports_missing_and_different_records_with_what_to_do() {
    let (_dir, manifest) = example("full-association.yaml");
    let mut zone: Vec<Record> = records(&manifest)
        .iter()
        .filter(|r| r["name"] != "_dmarc.amis-quartier.org.")
        .map(wire)
        .collect();
    for record in &mut zone {
        if record.name == name("mail.amis-quartier.org.") && record.record_type() == RecordType::A {
            record.data = RData::A(A([198, 51, 100, 7].into()));
        }
    }
    let server = StubDns::serve(zone);

    let run = check(&manifest, server.address).run();
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let out = &run.stdout;
    assert!(
        out.contains("missing: `_dmarc.amis-quartier.org.` TXT\n"),
        "{out}"
    );
    assert!(
        out.contains("  hint: add it in the registrar's DNS panel: name `_dmarc`, type `TXT`, value `v=DMARC1; p=quarantine; rua=mailto:bureau@amis-quartier.org`"),
        "{out}"
    );
    assert!(
        out.contains("different: `mail.amis-quartier.org.` A\n"),
        "{out}"
    );
    assert!(
        out.contains("  expected: 203.0.113.10\n  found:    198.51.100.7\n"),
        "{out}"
    );
    assert!(out.contains("11 in place, 1 missing, 1 different"), "{out}");

    let run = check(&manifest, server.address)
        .arg("--format")
        .arg("json")
        .run();
    assert_eq!(run.code, 1);
    let report = run.json();
    assert_eq!(report["in_place"], false);
    let statuses: BTreeMap<String, String> = report["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["status"] != "matches")
        .map(|r| {
            (
                format!(
                    "{} {}",
                    r["name"].as_str().expect("name"),
                    r["type"].as_str().expect("type")
                ),
                r["status"].as_str().expect("status").to_string(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        BTreeMap::from([
            (
                "_dmarc.amis-quartier.org. TXT".to_string(),
                "missing".to_string()
            ),
            (
                "mail.amis-quartier.org. A".to_string(),
                "different".to_string()
            ),
        ])
    );
}

#[test]
fn check_exits_2_when_no_resolver_answers() {
    let (_dir, manifest) = example("mail-only.yaml");
    let run = check(&manifest, closed_port()).run();
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(
            "error: cannot check the DNS records: no answer from the DNS resolver 127.0.0.1:"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("hint: check the address and port given to `--resolver`")
    );
}

#[test]
fn check_of_a_manifest_needing_no_record_fails_instead_of_passing_on_nothing() {
    let (_dir, manifest) = example("board-only.yaml");
    let run = check(&manifest, closed_port()).run();
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("needs no DNS record, so there is nothing to check"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("hint: give the machine's address under `association.public_address`")
    );
    assert!(!run.stdout.contains("0 in place"), "{}", run.stdout);
}

#[test]
fn check_of_one_record_says_record_in_the_singular() {
    let (_dir, manifest) = example("board-only.yaml");
    let text = std::fs::read_to_string(&manifest)
        .expect("readable")
        .replace(
            "  timezone: Europe/Paris\n",
            "  timezone: Europe/Paris\n  public_address: { ipv4: 203.0.113.5 }\n",
        );
    std::fs::write(&manifest, text).expect("write");
    let zone: Vec<Record> = records(&manifest).iter().map(wire).collect();
    assert_eq!(zone.len(), 1);
    let server = StubDns::serve(zone);
    let run = check(&manifest, server.address).run();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("checking 1 record of"),
        "{}",
        run.stdout
    );
}

/// `manifest` with the partner's backup mail server named.
fn with_secondary_mx(manifest: &Path, host: &str) {
    let text = std::fs::read_to_string(manifest).expect("the manifest");
    let text = text.replacen(
        "\n  timezone:",
        &format!("\n  secondary_mx: {host}\n  timezone:"),
        1,
    );
    assert!(text.contains("secondary_mx"), "{text}");
    std::fs::write(manifest, text).expect("written");
}

#[test]
fn a_secondary_mx_is_published_after_the_association_s_own_and_checked() {
    let (_dir, manifest) = example("full-association.yaml");
    with_secondary_mx(&manifest, "mx2.voisins.example.net");
    let printed = records(&manifest);
    let mx: Vec<&str> = printed
        .iter()
        .filter(|r| r["type"] == "MX")
        .map(|r| r["value"].as_str().expect("text"))
        .collect();
    assert_eq!(
        mx,
        ["10 mail.amis-quartier.org.", "20 mx2.voisins.example.net."]
    );

    // Every record in place, and the partner's server resolves.
    let mut zone: Vec<Record> = printed.iter().map(wire).collect();
    zone.push(Record::from_rdata(
        name("mx2.voisins.example.net."),
        3600,
        RData::A(A("198.51.100.25".parse().expect("IPv4"))),
    ));
    let server = StubDns::serve(zone.clone());
    let run = check(&manifest, server.address).run();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(
            "ok: the partner's backup mail server `mx2.voisins.example.net` resolves (198.51.100.25)"
        ),
        "{}",
        run.stdout
    );

    // The partner's name does not resolve: the MX points nowhere.
    zone.pop();
    let server = StubDns::serve(zone.clone());
    let run = check(&manifest, server.address).run();
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(
            "missing: the partner's backup mail server `mx2.voisins.example.net` has no address in DNS"
        ),
        "{}",
        run.stdout
    );
    let json = check(&manifest, server.address)
        .args(["--format", "json"])
        .run()
        .json();
    assert_eq!(json["in_place"], false);
    assert_eq!(json["secondary_mx"]["addresses"], serde_json::json!([]));

    // Preferences swapped: mail would go to the partner first.
    for record in &mut zone {
        if let RData::MX(mx) = &mut record.data {
            mx.preference = 30 - mx.preference;
        }
    }
    zone.push(Record::from_rdata(
        name("mx2.voisins.example.net."),
        3600,
        RData::A(A("198.51.100.25".parse().expect("IPv4"))),
    ));
    let server = StubDns::serve(zone);
    let run = check(&manifest, server.address).run();
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("different: `amis-quartier.org.` MX"),
        "{}",
        run.stdout
    );
}
