//! Committee meshes over real UDP on loopback, every member attested with synthetic quotes:
//! reconnect after a killed member, re-attestation when a certificate renews, a non-member
//! refused without disturbing the members.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use ratls_quic::link::{
    Committee, CommitteeEvent, CommitteePolicy, EndpointAddr, LocalNode, MemberView,
};
use ratls_quic::synthetic::sample_measurements;
use ratls_quic::AttestationLevel;
use ratls_quic::{ConfigError, Endpoint, EndpointConfig};
use ratls_quic::{Identity, PeerId};

const LIMIT: Duration = Duration::from_secs(90);

fn level() -> AttestationLevel {
    AttestationLevel::TdxRaTlsBidirectional
}

fn member_config(identity: &Identity, lifetime: Option<Duration>) -> EndpointConfig {
    let (verifier, collateral) = verifier();
    let builder = EndpointConfig::builder(identity.clone())
        .with_policy(policy(level()))
        .with_quote_provider(provider(sample_measurements()))
        .with_quote_verifier(verifier, collateral);
    match lifetime {
        Some(lifetime) => builder.cert_lifetime(lifetime),
        None => builder,
    }
    .build()
    .unwrap()
}

async fn bind_at(addr: SocketAddr, identity: &Identity, lifetime: Option<Duration>) -> LocalNode {
    for _ in 0..200 {
        match Endpoint::bind(addr, member_config(identity, lifetime)).await {
            Ok(endpoint) => return LocalNode::new(endpoint),
            Err(ConfigError::Io(error)) if error.kind() == std::io::ErrorKind::AddrInUse => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("bind {addr}: {error}"),
        }
    }
    panic!("{addr} stayed in use");
}

fn fast() -> CommitteePolicy {
    let mut policy = CommitteePolicy::default();
    policy.backoff_initial = Duration::from_millis(50);
    policy.backoff_max = Duration::from_millis(500);
    policy.renewal_poll = Duration::from_millis(200);
    policy
}

struct Roster {
    identities: Vec<Identity>,
    addrs: Vec<SocketAddr>,
}

impl Roster {
    fn new(n: usize) -> Self {
        let mut identities: Vec<_> = (0..n).map(|_| Identity::generate().unwrap()).collect();
        identities.sort_by_key(Identity::peer_id);
        let addrs = (0..n)
            .map(|_| {
                std::net::UdpSocket::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
            })
            .collect();
        Self { identities, addrs }
    }

    fn members(&self) -> Vec<EndpointAddr> {
        self.identities
            .iter()
            .zip(&self.addrs)
            .map(|(id, addr)| EndpointAddr::new(id.peer_id()).with_ip_addr(*addr))
            .collect()
    }

    fn id(&self, i: usize) -> PeerId {
        self.identities[i].peer_id()
    }

    async fn start(&self, i: usize, lifetime: Option<Duration>) -> (LocalNode, Committee) {
        let node = bind_at(self.addrs[i], &self.identities[i], lifetime).await;
        let committee = Committee::join(&node, self.members(), fast()).unwrap();
        (node, committee)
    }
}

fn linked(view: &[MemberView], peer: PeerId) -> bool {
    view.iter().any(|v| v.peer == peer && v.linked)
}

/// The next event about `peer` matching `want`.
async fn event_about(
    committee: &Committee,
    peer: PeerId,
    want: impl Fn(&CommitteeEvent) -> bool,
) -> CommitteeEvent {
    tokio::time::timeout(LIMIT, async {
        loop {
            let event = committee.next_event().await.expect("committee running");
            let about = match &event {
                CommitteeEvent::Up(view) => view.peer,
                CommitteeEvent::Down { peer, .. } | CommitteeEvent::Refused { peer, .. } => *peer,
                _ => continue,
            };
            if about == peer && want(&event) {
                return event;
            }
        }
    })
    .await
    .expect("event did not come")
}

/// Waits until `committee`'s view of `peer` says `linked`.
async fn until(committee: &Committee, peer: PeerId, linked_now: bool) -> MemberView {
    tokio::time::timeout(LIMIT, async {
        loop {
            if let Some(view) = committee.view().into_iter().find(|v| v.peer == peer) {
                if view.linked == linked_now {
                    return view;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("view did not change")
}

fn is_up(event: &CommitteeEvent) -> bool {
    matches!(event, CommitteeEvent::Up(_))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_member_is_reconnected_when_it_comes_back() {
    let roster = Roster::new(3);
    let (_n0, c0) = roster.start(0, None).await;
    let (n1, c1) = roster.start(1, None).await;
    let (_n2, c2) = roster.start(2, None).await;
    // Full mesh: each sees the two others up, at the committee's level, and reported it.
    for (committee, others) in [(&c0, [1, 2]), (&c1, [0, 2]), (&c2, [0, 1])] {
        for other in others {
            let view = until(committee, roster.id(other), true).await;
            assert_eq!(view.level, Some(level()));
            assert_eq!(view.mr_td, Some(sample_measurements().mr_td));
            assert!(view.quote_digest.is_some());
        }
        let mut up = std::collections::BTreeSet::new();
        while up.len() < 2 {
            match committee.next_event().await.unwrap() {
                CommitteeEvent::Up(view) => {
                    up.insert(view.peer);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(up, others.iter().map(|&o| roster.id(o)).collect());
    }
    c0.send_to(roster.id(2), &7u32).await.unwrap();
    let (from, _) = c2.recv().await.unwrap();
    assert_eq!(from, roster.id(0));

    // Kill m1 (the middle one: it dials m2 and is dialed by m0).
    drop(c1);
    n1.shutdown();
    drop(n1);
    for committee in [&c0, &c2] {
        let down = event_about(committee, roster.id(1), |e| {
            matches!(e, CommitteeEvent::Down { .. })
        })
        .await;
        assert!(matches!(down, CommitteeEvent::Down { .. }), "{down:?}");
        until(committee, roster.id(1), false).await;
    }
    // The pair that does not involve m1 keeps working.
    c2.send_to(roster.id(0), &8u32).await.unwrap();
    let (from, _) = c0.recv().await.unwrap();
    assert_eq!(from, roster.id(2));

    // m1 comes back on the same address with the same identity: both links are re-made.
    let (_n1, c1) = roster.start(1, None).await;
    for committee in [&c0, &c2] {
        event_about(committee, roster.id(1), is_up).await;
        until(committee, roster.id(1), true).await;
    }
    for other in [0, 2] {
        until(&c1, roster.id(other), true).await;
    }
    c1.send_to(roster.id(0), &9u32).await.unwrap();
    let (from, _) = c0.recv().await.unwrap();
    assert_eq!(from, roster.id(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewed_certificate_re_attests_the_link() {
    let roster = Roster::new(2);
    // Certificates live 3 s and renew at two thirds of that.
    let (_n0, c0) = roster.start(0, Some(Duration::from_secs(3))).await;
    let (_n1, c1) = roster.start(1, Some(Duration::from_secs(3))).await;
    let first = match event_about(&c0, roster.id(1), is_up).await {
        CommitteeEvent::Up(view) => view,
        other => panic!("{other:?}"),
    };
    // After a renewal the link is re-made with the new certificate and a fresh bond quote.
    let again = loop {
        match event_about(&c0, roster.id(1), is_up).await {
            CommitteeEvent::Up(view) if view.certificate_digest != first.certificate_digest => {
                break view
            }
            _ => {}
        }
    };
    assert_ne!(again.quote_digest, first.quote_digest);
    assert_eq!(again.level, Some(level()));
    drop(c1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_member_refused_without_disturbing_members() {
    let roster = Roster::new(2);
    let (_n0, c0) = roster.start(0, None).await;
    let (_n1, c1) = roster.start(1, None).await;
    event_about(&c0, roster.id(1), is_up).await;

    // An outsider whose roster names m1 (and itself) but which m1's roster does not name.
    let mut outsider_id = Identity::generate().unwrap();
    while outsider_id.peer_id() > roster.id(1) {
        outsider_id = Identity::generate().unwrap();
    }
    let outsider = bind_at("127.0.0.1:0".parse().unwrap(), &outsider_id, None).await;
    let members = vec![
        EndpointAddr::new(roster.id(1)).with_ip_addr(roster.addrs[1]),
        outsider.addr().unwrap(),
    ];
    let stranger = Committee::join(&outsider, members, fast()).unwrap();
    match event_about(&stranger, roster.id(1), |e| {
        matches!(e, CommitteeEvent::Refused { .. })
    })
    .await
    {
        CommitteeEvent::Refused { error, .. } => assert!(error.is_refusal(), "{error}"),
        other => panic!("{other:?}"),
    }
    assert!(!linked(&stranger.view(), roster.id(1)));
    // The members' link is untouched.
    assert!(linked(&c1.view(), roster.id(0)));
    c1.send_to(roster.id(0), &1u8).await.unwrap();
    let (from, _) = tokio::time::timeout(LIMIT, c0.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(from, roster.id(1));
}
