//! Five committee members on loopback form a full mesh of TdxRaTlsBidirectional links (quotes
//! from a synthetic test PKI whose root is trusted explicitly: this runs anywhere, and proves
//! nothing about hardware). Then one member restarts with other Measurements and is refused by
//! every other member, while their links keep working; it restarts with the right
//! Measurements and rejoins.
//!
//! ```sh
//! cargo run --example committee
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ratls_quic::link::{
    Committee, CommitteeEvent, CommitteePolicy, Datum, EndpointAddr, LocalNode, MemberView,
};
use ratls_quic::synthetic::{
    sample_measurements, SyntheticPki, SyntheticPkiParams, SyntheticQuoteProvider, SyntheticTcb,
};
use ratls_quic::AttestationLevel;
use ratls_quic::{Collateral, Measurements, QuoteVerifier, StaticCollateral};
use ratls_quic::{Endpoint, EndpointConfig};
use ratls_quic::{Identity, PeerId};
use ratls_quic::{MeasurementPolicy, MeasurementProfile, Policy};

const MEMBERS: usize = 5;
/// Upper bound on any one phase, so that a broken mesh fails instead of hanging.
const PHASE: Duration = Duration::from_secs(90);

/// An endpoint whose quotes carry `measurements` and whose policy pins the sample ones.
fn config(
    pki: &Arc<SyntheticPki>,
    identity: Identity,
    measurements: Measurements,
) -> anyhow::Result<EndpointConfig> {
    let mut policy = Policy::new(MeasurementPolicy::new(vec![MeasurementProfile::exact(
        "sample",
        &sample_measurements(),
    )]));
    policy.set_level(AttestationLevel::TdxRaTlsBidirectional);
    // Static synthetic collateral: the explicit, logged opt-out of the TdxRemote check that
    // levels from TdxRemote up include (a deployment declares its collateral service in
    // `[remote]` instead, docs/collateral.md).
    policy.dangerous().static_collateral();
    let provider =
        SyntheticQuoteProvider::new(Arc::clone(pki), measurements, SyntheticTcb::UpToDate);
    let verifier = QuoteVerifier::dangerous().trust_root(pki.root_der().to_vec());
    let collateral = StaticCollateral(Arc::new(Collateral::new(pki.collateral().clone())?));
    Ok(EndpointConfig::builder(identity)
        .with_policy(policy)
        .with_quote_provider(Arc::new(provider))
        .with_quote_verifier(verifier, Arc::new(collateral))
        .build()?)
}

struct Member {
    identity: Identity,
    addr: SocketAddr,
    committee: Option<Committee>,
    node: Option<LocalNode>,
}

impl Member {
    fn id(&self) -> PeerId {
        self.identity.peer_id()
    }

    fn committee(&self) -> &Committee {
        self.committee.as_ref().expect("member running")
    }
}

fn short(bytes: &[u8]) -> String {
    hex::encode(bytes.get(..6).unwrap_or(bytes))
}

fn print_view(name: &str, view: &[MemberView], names: &BTreeMap<PeerId, String>) {
    println!("{name} sees:");
    for member in view {
        let who = names.get(&member.peer).map_or("?", String::as_str);
        if member.linked {
            println!(
                "  {who}  level {}  MRTD {}…  bond quote {}…",
                member.level.map_or("-".to_owned(), |l| l.to_string()),
                member.mr_td.as_ref().map_or("-".into(), |m| short(m)),
                member
                    .quote_digest
                    .as_ref()
                    .map_or("-".into(), |d| short(d)),
            );
        } else {
            println!(
                "  {who}  not linked ({})",
                member.last_error.as_deref().unwrap_or("connecting")
            );
        }
    }
}

async fn start(
    pki: &Arc<SyntheticPki>,
    member: &mut Member,
    measurements: Measurements,
    roster: &[EndpointAddr],
) -> anyhow::Result<()> {
    let mut endpoint = None;
    for _ in 0..100 {
        match Endpoint::bind(
            member.addr,
            config(pki, member.identity.clone(), measurements)?,
        )
        .await
        {
            Ok(bound) => {
                endpoint = Some(bound);
                break;
            }
            Err(ratls_quic::ConfigError::Io(error))
                if error.kind() == std::io::ErrorKind::AddrInUse =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
    let endpoint = endpoint.with_context(|| format!("cannot bind {}", member.addr))?;
    let node = LocalNode::new(endpoint);
    let mut policy = CommitteePolicy::default();
    policy.backoff_initial = Duration::from_millis(100);
    policy.backoff_max = Duration::from_secs(1);
    member.committee = Some(Committee::join(&node, roster.iter().cloned(), policy)?);
    member.node = Some(node);
    Ok(())
}

fn stop(member: &mut Member) {
    member.committee = None;
    if let Some(node) = member.node.take() {
        node.shutdown();
    }
}

/// Waits until every running member in `among` has a link to every other one in `among`.
async fn until_meshed(members: &[Member], among: &BTreeSet<usize>) -> anyhow::Result<()> {
    tokio::time::timeout(PHASE, async {
        loop {
            let done = among.iter().all(|&i| {
                let view = members[i].committee().view();
                among
                    .iter()
                    .filter(|&&j| j != i)
                    .all(|&j| view.iter().any(|v| v.peer == members[j].id() && v.linked))
            });
            if done {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .context("mesh did not form")
}

/// Each member of `among` sends to each other one, and every message arrives.
async fn exchange(members: &[Member], among: &BTreeSet<usize>, round: u32) -> anyhow::Result<()> {
    for &i in among {
        for &j in among.iter().filter(|&&j| j != i) {
            members[i]
                .committee()
                .send_to(members[j].id(), &(round, i as u32))
                .await?;
        }
    }
    for &j in among {
        let expected = among.len() - 1;
        let mut from = BTreeSet::new();
        while from.len() < expected {
            let (peer, bytes) = tokio::time::timeout(PHASE, members[j].committee().recv())
                .await
                .context("message lost")?
                .context("committee closed")?;
            let (r, sender) = <(u32, u32) as Datum>::decode(&bytes)?;
            if r == round {
                assert_eq!(members[sender as usize].id(), peer);
                from.insert(sender);
            }
        }
    }
    Ok(())
}

/// Runs the five-member scenario; fails if any step does not happen.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
pub async fn main() -> anyhow::Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let pki = Arc::new(SyntheticPki::generate(SyntheticPkiParams::new(now - 3600))?);

    // Reserve five loopback ports, then start a member on each.
    let mut members = Vec::new();
    for _ in 0..MEMBERS {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
        members.push(Member {
            identity: Identity::generate()?,
            addr: socket.local_addr()?,
            committee: None,
            node: None,
        });
    }
    members.sort_by_key(Member::id);
    let names: BTreeMap<PeerId, String> = members
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id(), format!("m{i} {}…", short(m.id().as_bytes()))))
        .collect();
    let roster: Vec<EndpointAddr> = members
        .iter()
        .map(|m| EndpointAddr::new(m.id()).with_ip_addr(m.addr))
        .collect();
    for member in &mut members {
        start(&pki, member, sample_measurements(), &roster).await?;
    }
    let all: BTreeSet<usize> = (0..MEMBERS).collect();
    until_meshed(&members, &all).await?;
    println!("== full mesh: {} links", MEMBERS * (MEMBERS - 1) / 2);
    for (i, member) in members.iter().enumerate() {
        let view = member.committee().view();
        assert!(view
            .iter()
            .all(|v| v.level == Some(AttestationLevel::TdxRaTlsBidirectional)));
        print_view(&names[&members[i].id()], &view, &names);
    }
    exchange(&members, &all, 1).await?;
    println!("== every member reached every other");

    // m2 restarts with other Measurements: every other member refuses it.
    let bad = 2;
    let bad_id = members[bad].id();
    stop(&mut members[bad]);
    let mut other = sample_measurements();
    other.mr_td[0] ^= 0xff;
    start(&pki, &mut members[bad], other, &roster).await?;
    println!("== {} restarted with another MRTD", names[&bad_id]);
    let others: BTreeSet<usize> = all.iter().copied().filter(|&i| i != bad).collect();
    for &i in &others {
        let committee = members[i].committee();
        let reason = tokio::time::timeout(PHASE, async {
            loop {
                match committee.next_event().await {
                    Some(CommitteeEvent::Refused { peer, error }) if peer == bad_id => {
                        // Refused on its evidence, by this side's verifier: a typed reason.
                        assert!(error.rejection().is_some(), "{error}");
                        return Some(error.to_string());
                    }
                    Some(_) => {}
                    None => return None,
                }
            }
        })
        .await
        .context("no refusal")?
        .context("committee closed")?;
        println!(
            "  {} refused {}: {reason}",
            names[&members[i].id()],
            names[&bad_id]
        );
        assert!(!committee
            .view()
            .iter()
            .any(|v| v.peer == bad_id && v.linked));
    }
    // The other links never stopped working.
    until_meshed(&members, &others).await?;
    exchange(&members, &others, 2).await?;
    println!("== the four others still reach each other");

    // m2 restarts with the right Measurements and rejoins.
    stop(&mut members[bad]);
    start(&pki, &mut members[bad], sample_measurements(), &roster).await?;
    until_meshed(&members, &all).await?;
    exchange(&members, &all, 3).await?;
    println!("== {} rejoined", names[&bad_id]);
    for member in &members {
        print_view(&names[&member.id()], &member.committee().view(), &names);
    }
    for member in &mut members {
        stop(member);
    }
    Ok(())
}
