//! Committee meshes: every pair of members keeps one attested link.
//!
//! - The member with the lower [`PeerId`] dials, the other accepts; a dial from the higher one
//!   is refused. Links use ALPN [`COMMITTEE_ALPN`] with per-bond freshness: each link carries a
//!   fresh quote from both sides, bound to that connection.
//! - The dialer sends one hello frame first: the 32-byte committee id, blake3 over the sorted
//!   member ids (domain `ratls-quic committee v1`). An acceptor with another member list closes
//!   with [`DifferentNetwork`]; a dialer that is no member is closed with [`UnknownPeer`].
//! - A dropped link is dialed again after a capped exponential backoff with jitter; a refused
//!   member is retried the same way, so it rejoins once it presents acceptable evidence. One
//!   member's failure touches no other pair.
//! - When this side's certificate is renewed, it closes its links with [`Reattest`]; dialers
//!   reconnect at once, so every bond is re-attested with the new certificate.
//! - [`Committee::events`] reports members coming up, going down and being refused.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::{mpsc, Mutex as AsyncMutex};
use tokio_util::sync::CancellationToken;

use super::addr::EndpointAddr;
use super::close::{DifferentNetwork, ProtocolViolation, UnknownPeer};
use super::error::{AcceptError, OpenError, RecvError, SendError};
use super::node::LocalNode;
use super::router::{ProtocolHandler, Refusal, Router};
use super::stream::{Link, LinkSender};
use super::{Datum, Protocol};
use crate::endpoint::{AlpnRoute, AttestedConnection, Error as EndpointError, RouteError};
use crate::identity::PeerId;
use crate::level::AttestationLevel;

/// The ALPN of committee links.
pub const COMMITTEE_ALPN: &[u8] = b"/ratls-quic/committee/1";

crate::make_close_reason!(
    /// The closing side renewed its certificate; the link is re-made with the new one (40_205).
    pub struct Reattest, 40_205);

crate::make_close_reason!(
    /// The peer's bond is below the committee's level floor (40_403).
    pub struct BelowCommitteeLevel, 40_403);

struct CommitteeProtocol;

impl Protocol for CommitteeProtocol {
    const ALPN: &'static [u8] = COMMITTEE_ALPN;
}

/// One frame as it came, for the committee's own hello and the application's messages.
struct Frame(Bytes);

impl Datum for Frame {
    type EncodeError = core::convert::Infallible;
    type DecodeError = core::convert::Infallible;

    fn encode(&self) -> Result<Bytes, Self::EncodeError> {
        Ok(self.0.clone())
    }

    fn decode(bytes: &[u8]) -> Result<Self, Self::DecodeError> {
        Ok(Self(Bytes::copy_from_slice(bytes)))
    }
}

/// How a committee keeps its links.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CommitteePolicy {
    /// Links below this level are refused (default TdxRaTlsBidirectional).
    pub min_level: AttestationLevel,
    /// First reconnect delay (default 200 ms); doubles per failed attempt.
    pub backoff_initial: Duration,
    /// Largest reconnect delay (default 5 s).
    pub backoff_max: Duration,
    /// How often to look for a renewed local certificate (default 1 s).
    pub renewal_poll: Duration,
}

impl Default for CommitteePolicy {
    fn default() -> Self {
        Self {
            min_level: AttestationLevel::TdxRaTlsBidirectional,
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(5),
            renewal_poll: Duration::from_secs(1),
        }
    }
}

/// The delay before reconnect attempt `attempt` (0-based): `initial * 2^attempt` capped at
/// `max`, scaled by a jitter factor in [0.5, 1) taken from `random`.
pub fn backoff_delay(attempt: u32, initial: Duration, max: Duration, random: u32) -> Duration {
    let exponential = initial.saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX));
    let capped = exponential.min(max);
    let jitter = 0.5 + f64::from(random) / (f64::from(u32::MAX) * 2.0 + 2.0);
    capped.mul_f64(jitter)
}

fn random_u32() -> u32 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 4];
    // On failure the jitter is 0.5: still capped, still exponential.
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    u32::from_le_bytes(bytes)
}

/// Why a member is refused or its link ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommitteeError {
    /// Dialing the member failed (this side refused it, it refused us, or it is unreachable).
    #[error("dial: {0}")]
    Open(#[from] OpenError),
    /// The member's connection to us was refused (handshake, bond proof).
    #[error("incoming: {0}")]
    Incoming(EndpointError),
    /// Taking the link's stream failed.
    #[error("accept: {0}")]
    Accept(#[from] AcceptError),
    /// The link failed or was closed.
    #[error("link: {0}")]
    Recv(#[from] RecvError),
    /// Sending the hello failed.
    #[error("send: {0}")]
    Send(#[from] SendError),
    /// The member's bond is below the committee's level floor.
    #[error("bond at level {presented}, the committee requires {required}")]
    BelowLevel {
        /// The committee's floor.
        required: AttestationLevel,
        /// What the bond reached.
        presented: AttestationLevel,
    },
    /// The member has another member list.
    #[error("the member belongs to another committee")]
    OtherCommittee,
    /// The committee ALPN cannot be routed.
    #[error("{0}")]
    Route(#[from] RouteError),
    /// No such member, or no link to it right now.
    #[error("no link to {0}")]
    NotLinked(PeerId),
}

impl CommitteeError {
    /// Whether this is a refusal on attestation or membership grounds (either side judged the
    /// other's evidence, bond proof, level or committee), not a peer that is merely down or
    /// unreachable.
    pub fn is_refusal(&self) -> bool {
        match self {
            Self::Open(OpenError::Io(error)) | Self::Incoming(error) => endpoint_refusal(error),
            Self::BelowLevel { .. } | Self::OtherCommittee => true,
            // The acceptor closed the hello: not a member, another committee, below the level.
            Self::Recv(error) => error.close_reason().is_some_and(|close| {
                close == UnknownPeer
                    || close == DifferentNetwork
                    || close == BelowCommitteeLevel
                    || close == ProtocolViolation
            }),
            _ => false,
        }
    }

    /// This side's typed reason, when this side refused the member's evidence.
    pub fn rejection(&self) -> Option<&crate::PeerRejection> {
        match self {
            Self::Open(OpenError::Io(error)) | Self::Incoming(error) => error.rejection(),
            _ => None,
        }
    }
}

fn endpoint_refusal(error: &EndpointError) -> bool {
    match error {
        EndpointError::Rejected(_) => true,
        // The peer's TLS alert (QUIC CRYPTO_ERROR 0x100 + alert).
        EndpointError::Connection(quinn::ConnectionError::ConnectionClosed(close)) => {
            (0x100..0x200).contains(&u64::from(close.error_code))
        }
        EndpointError::Connection(quinn::ConnectionError::ApplicationClosed(close)) => {
            let code = close.error_code.into_inner();
            code == u64::from(crate::BOND_REFUSED)
                || close == UnknownPeer
                || close == DifferentNetwork
                || close == BelowCommitteeLevel
        }
        _ => false,
    }
}

/// A membership change.
#[derive(Debug)]
#[non_exhaustive]
pub enum CommitteeEvent {
    /// A link to the member is up; what was verified about it.
    Up(MemberView),
    /// The link to the member ended; it is being re-made (dialer) or awaited (acceptor).
    Down {
        /// The member.
        peer: PeerId,
        /// Why, when known.
        error: CommitteeError,
    },
    /// The member was refused; no link to it until it presents acceptable evidence.
    Refused {
        /// The member.
        peer: PeerId,
        /// Why.
        error: CommitteeError,
    },
}

/// What this member knows about another.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberView {
    /// The member.
    pub peer: PeerId,
    /// Whether a link is up.
    pub linked: bool,
    /// The level of the current (or last) bond.
    pub level: Option<AttestationLevel>,
    /// The member's MRTD, from its verified quote.
    pub mr_td: Option<[u8; 48]>,
    /// blake3 of the quote that admitted the current bond.
    pub quote_digest: Option<[u8; 32]>,
    /// blake3 of the quote in the member's certificate (changes when it renews).
    pub certificate_digest: Option<[u8; 32]>,
    /// Why it was last refused or went down, as text.
    pub last_error: Option<String>,
}

/// The current link of each member: generation, connection, sending half.
type Senders = HashMap<
    PeerId,
    (
        u64,
        AttestedConnection,
        Arc<AsyncMutex<LinkSender<CommitteeProtocol>>>,
    ),
>;

struct Shared {
    node: LocalNode,
    id: [u8; 32],
    members: BTreeSet<PeerId>,
    addrs: HashMap<PeerId, EndpointAddr>,
    policy: CommitteePolicy,
    views: Mutex<HashMap<PeerId, MemberView>>,
    senders: Mutex<Senders>,
    generation: Mutex<u64>,
    events: mpsc::UnboundedSender<CommitteeEvent>,
    inbox: mpsc::UnboundedSender<(PeerId, Bytes)>,
    cancel: CancellationToken,
}

impl core::fmt::Debug for Shared {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Committee")
            .field("local", &self.node.id())
            .field("members", &self.members.len())
            .finish_non_exhaustive()
    }
}

/// A running committee member. Dropping it closes its links.
#[derive(Debug)]
pub struct Committee {
    shared: Arc<Shared>,
    events: AsyncMutex<mpsc::UnboundedReceiver<CommitteeEvent>>,
    inbox: AsyncMutex<mpsc::UnboundedReceiver<(PeerId, Bytes)>>,
    _router: Router,
}

impl Drop for Committee {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}

impl Committee {
    /// Joins the committee of `members` (this node among them or not; it is added) on `node`:
    /// serves [`COMMITTEE_ALPN`] on the node's endpoint and dials every member with a higher
    /// PeerId. Each member needs a direct address (in `members` or the node's address book).
    pub fn join(
        node: &LocalNode,
        members: impl IntoIterator<Item = EndpointAddr>,
        policy: CommitteePolicy,
    ) -> Result<Self, CommitteeError> {
        let local = node.id();
        let mut addrs = HashMap::new();
        for member in members {
            if member.id != local {
                addrs.insert(member.id, member);
            }
        }
        let mut all: BTreeSet<PeerId> = addrs.keys().copied().collect();
        all.insert(local);
        let route = AlpnRoute::per_bond(COMMITTEE_ALPN)?;
        node.set_route(route.clone());
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (inbox_tx, inbox_rx) = mpsc::unbounded_channel();
        let views = addrs
            .keys()
            .map(|peer| (*peer, empty_view(*peer)))
            .collect();
        let shared = Arc::new(Shared {
            node: node.clone(),
            id: committee_id(&all),
            members: all,
            addrs,
            policy,
            views: Mutex::new(views),
            senders: Mutex::default(),
            generation: Mutex::new(0),
            events: events_tx,
            inbox: inbox_tx,
            cancel: node.termination().child_token(),
        });
        let (refusals_tx, refusals_rx) = mpsc::unbounded_channel();
        let router = Router::builder(node.clone())
            .accept_route(route, Acceptor(Arc::clone(&shared)))
            .on_refusal(refusals_tx)
            .spawn()?;
        tokio::spawn(report_refusals(Arc::clone(&shared), refusals_rx));
        tokio::spawn(watch_renewal(Arc::clone(&shared)));
        for peer in shared.addrs.keys().filter(|peer| **peer > local) {
            tokio::spawn(dial_forever(Arc::clone(&shared), *peer));
        }
        Ok(Self {
            shared,
            events: AsyncMutex::new(events_rx),
            inbox: AsyncMutex::new(inbox_rx),
            _router: router,
        })
    }

    /// The committee id both sides check in the hello.
    pub fn id(&self) -> [u8; 32] {
        self.shared.id
    }

    /// This member's view of every other member, ordered by PeerId.
    pub fn view(&self) -> Vec<MemberView> {
        let views = lock(&self.shared.views);
        let mut out: Vec<_> = views.values().cloned().collect();
        out.sort_by_key(|view| view.peer);
        out
    }

    /// The next membership change.
    pub async fn next_event(&self) -> Option<CommitteeEvent> {
        self.events.lock().await.recv().await
    }

    /// Membership changes as a stream.
    pub fn events(&self) -> impl Stream<Item = CommitteeEvent> + Send + '_ {
        futures_util::stream::unfold(self, |committee| async move {
            committee.next_event().await.map(|event| (event, committee))
        })
    }

    /// Sends `datum` to `peer` over the current link.
    pub async fn send_to<D: Datum>(
        &self,
        peer: PeerId,
        datum: &D,
    ) -> Result<usize, CommitteeError> {
        let sender = lock(&self.shared.senders)
            .get(&peer)
            .map(|(_, _, sender)| Arc::clone(sender))
            .ok_or(CommitteeError::NotLinked(peer))?;
        let sent = sender.lock().await.send(datum).await?;
        Ok(sent)
    }

    /// The next message any member sent, with its sender.
    pub async fn recv(&self) -> Option<(PeerId, Bytes)> {
        self.inbox.lock().await.recv().await
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn empty_view(peer: PeerId) -> MemberView {
    MemberView {
        peer,
        linked: false,
        level: None,
        mr_td: None,
        quote_digest: None,
        certificate_digest: None,
        last_error: None,
    }
}

fn committee_id(members: &BTreeSet<PeerId>) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key("ratls-quic committee v1");
    for member in members {
        hasher.update(member.as_bytes());
    }
    *hasher.finalize().as_bytes()
}

impl Shared {
    fn emit(&self, event: CommitteeEvent) {
        let _ = self.events.send(event);
    }

    /// Records a failed attempt. A refusal (see [`CommitteeError::is_refusal`]) is reported
    /// when it differs from the last one (a member retried with backoff is refused again and
    /// again for the same reason); an unreachable member is only recorded in the view.
    fn refused(&self, peer: PeerId, error: CommitteeError) {
        let text = error.to_string();
        if !error.is_refusal() {
            tracing::debug!(%peer, %error, "committee member unreachable");
            if let Some(view) = lock(&self.views).get_mut(&peer) {
                view.last_error = Some(text);
            }
            return;
        }
        let changed = {
            let mut views = lock(&self.views);
            let view = views.entry(peer).or_insert_with(|| empty_view(peer));
            let changed = view.linked || view.last_error.as_deref() != Some(&text);
            view.linked = false;
            view.last_error = Some(text);
            changed
        };
        if changed {
            tracing::warn!(%peer, %error, "committee member refused");
            self.emit(CommitteeEvent::Refused { peer, error });
        }
    }

    /// Checks a new link and installs it; returns a receiver that fires when it ends, with
    /// whether it ended for a re-attestation.
    fn install(
        self: &Arc<Self>,
        link: Link<CommitteeProtocol>,
    ) -> Result<tokio::sync::oneshot::Receiver<bool>, CommitteeError> {
        let peer = link.remote_id();
        let seen = link.attestation();
        let level = seen.level();
        if level < self.policy.min_level {
            close_with(link.connection(), BelowCommitteeLevel);
            return Err(CommitteeError::BelowLevel {
                required: self.policy.min_level,
                presented: level,
            });
        }
        let view = MemberView {
            peer,
            linked: true,
            level: Some(level),
            mr_td: seen.measurements().map(|m| m.mr_td),
            quote_digest: seen.quote_digest().copied(),
            certificate_digest: seen.certificate_quote().map(|q| *q.quote_digest()),
            last_error: None,
        };
        let generation = {
            let mut generation = lock(&self.generation);
            *generation = generation.wrapping_add(1);
            *generation
        };
        let connection = link.connection().clone();
        let (sender, mut receiver) = link.split();
        let old = lock(&self.senders).insert(
            peer,
            (generation, connection, Arc::new(AsyncMutex::new(sender))),
        );
        if let Some((_, old, _)) = old {
            close_with(&old, Reattest);
        }
        lock(&self.views).insert(peer, view.clone());
        tracing::info!(%peer, %level, "committee link up");
        self.emit(CommitteeEvent::Up(view));
        let (down_tx, down_rx) = tokio::sync::oneshot::channel();
        let shared = Arc::clone(self);
        tokio::spawn(async move {
            let error = loop {
                match receiver.recv::<Frame>().await {
                    Ok(Frame(bytes)) => {
                        let _ = shared.inbox.send((peer, bytes));
                    }
                    Err(error) => break error,
                }
            };
            let reattest = is_reattest(&error);
            let current = {
                let mut senders = lock(&shared.senders);
                let current = senders.get(&peer).is_some_and(|(g, ..)| *g == generation);
                if current {
                    senders.remove(&peer);
                }
                current
            };
            if current && !shared.cancel.is_cancelled() {
                if let Some(view) = lock(&shared.views).get_mut(&peer) {
                    view.linked = false;
                    view.last_error = Some(error.to_string());
                }
                tracing::info!(%peer, %error, "committee link down");
                shared.emit(CommitteeEvent::Down {
                    peer,
                    error: CommitteeError::Recv(error),
                });
            }
            let _ = down_tx.send(reattest);
        });
        Ok(down_rx)
    }
}

fn close_with(connection: &quinn::Connection, reason: impl Into<super::ApplicationClose>) {
    let reason = reason.into();
    connection.close(reason.error_code, &reason.reason);
}

/// Whether a link ended for a re-attestation: the peer closed it with [`Reattest`], or this
/// side did (renewal, or a newer link replaced it).
fn is_reattest(error: &RecvError) -> bool {
    matches!(
        error,
        RecvError::Io(quinn::ReadError::ConnectionLost(
            quinn::ConnectionError::LocallyClosed
        ))
    ) || error.close_reason().is_some_and(|close| close == Reattest)
}

/// The dialer of one pair: link, wait for it to end, link again.
async fn dial_forever(shared: Arc<Shared>, peer: PeerId) {
    let Some(addr) = shared.addrs.get(&peer).cloned() else {
        return;
    };
    let policy = shared.policy.clone();
    let mut attempt: u32 = 0;
    while !shared.cancel.is_cancelled() {
        let opened = Link::<CommitteeProtocol>::open_with_cancel(
            &shared.node,
            addr.clone(),
            shared.cancel.child_token(),
        )
        .await;
        let result = match opened {
            Ok(link) => hello(&shared, link)
                .await
                .and_then(|link| shared.install(link)),
            Err(error) if error.is_cancelled() => return,
            Err(error) => Err(error.into()),
        };
        match result {
            Ok(down) => {
                attempt = 0;
                let reattest = tokio::select! {
                    ended = down => ended.unwrap_or(false),
                    () = shared.cancel.cancelled() => return,
                };
                // A re-attestation reconnects at once; any other end waits first.
                if reattest {
                    continue;
                }
            }
            Err(error) => shared.refused(peer, error),
        }
        let delay = backoff_delay(
            attempt,
            policy.backoff_initial,
            policy.backoff_max,
            random_u32(),
        );
        attempt = attempt.saturating_add(1);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shared.cancel.cancelled() => return,
        }
    }
}

/// The dialer's half of the hello: sends the committee id, waits for the acceptor's.
async fn hello(
    shared: &Shared,
    mut link: Link<CommitteeProtocol>,
) -> Result<Link<CommitteeProtocol>, CommitteeError> {
    link.send(&Frame(Bytes::copy_from_slice(&shared.id)))
        .await?;
    let Frame(reply) = link.recv::<Frame>().await?;
    if reply.as_ref() != shared.id {
        let _ = link.close(DifferentNetwork).await;
        return Err(CommitteeError::OtherCommittee);
    }
    Ok(link)
}

/// The accepting side of the pairs where this member has the higher PeerId.
#[derive(Debug)]
struct Acceptor(Arc<Shared>);

impl ProtocolHandler for Acceptor {
    async fn accept(&self, connection: AttestedConnection) -> Result<(), AcceptError> {
        let shared = &self.0;
        let peer = connection.peer().peer_id();
        if !shared.members.contains(&peer) {
            close_with(&connection, UnknownPeer);
            return Ok(());
        }
        if peer > shared.node.id() {
            // The lower PeerId dials; a dial the other way would make a second link.
            close_with(&connection, ProtocolViolation);
            return Ok(());
        }
        let mut link =
            Link::<CommitteeProtocol>::accept_with_cancel(connection, shared.cancel.child_token())
                .await?;
        let hello = match link.recv::<Frame>().await {
            Ok(Frame(hello)) => hello,
            Err(error) => {
                shared.refused(peer, error.into());
                return Ok(());
            }
        };
        if hello.as_ref() != shared.id {
            let _ = link.close(DifferentNetwork).await;
            shared.refused(peer, CommitteeError::OtherCommittee);
            return Ok(());
        }
        let level = link.attestation().level();
        if level < shared.policy.min_level {
            let _ = link.close(BelowCommitteeLevel).await;
            shared.refused(
                peer,
                CommitteeError::BelowLevel {
                    required: shared.policy.min_level,
                    presented: level,
                },
            );
            return Ok(());
        }
        let reply = link.send(&Frame(Bytes::copy_from_slice(&shared.id))).await;
        match reply
            .map_err(CommitteeError::from)
            .and_then(|_| shared.install(link))
        {
            Ok(_) => {}
            Err(error) => shared.refused(peer, error),
        }
        Ok(())
    }
}

/// Refusals of incoming connections, attributed to members by address.
async fn report_refusals(shared: Arc<Shared>, mut refusals: mpsc::UnboundedReceiver<Refusal>) {
    while let Some(refusal) = refusals.recv().await {
        let member = shared.addrs.iter().find_map(|(peer, addr)| {
            addr.ip_addrs()
                .any(|ip| ip == refusal.remote)
                .then_some(*peer)
        });
        match member {
            Some(peer) => shared.refused(peer, CommitteeError::Incoming(refusal.error)),
            None => {
                tracing::info!(remote = %refusal.remote, error = %refusal.error, "refused a non-member")
            }
        }
    }
}

/// Closes every link with [`Reattest`] when this side's certificate changes.
async fn watch_renewal(shared: Arc<Shared>) {
    let mut current = shared.node.endpoint().current_certificate();
    loop {
        tokio::select! {
            () = tokio::time::sleep(shared.policy.renewal_poll) => {}
            () = shared.cancel.cancelled() => return,
        }
        let now = shared.node.endpoint().current_certificate();
        if now == current {
            continue;
        }
        current = now;
        let links: Vec<_> = lock(&shared.senders)
            .values()
            .map(|(_, connection, _)| connection.clone())
            .collect();
        tracing::info!(
            links = links.len(),
            "certificate renewed: re-attesting committee links"
        );
        for connection in links {
            close_with(&connection, Reattest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        assert_eq!(backoff_delay(0, initial, max, 0), Duration::from_millis(50));
        assert_eq!(
            backoff_delay(3, initial, max, 0),
            Duration::from_millis(400)
        );
        assert_eq!(
            backoff_delay(30, initial, max, 0),
            Duration::from_millis(2500)
        );
        assert_eq!(
            backoff_delay(u32::MAX, initial, max, 0),
            Duration::from_millis(2500)
        );
        let top = backoff_delay(30, initial, max, u32::MAX);
        assert!(top < max && top > Duration::from_millis(4900), "{top:?}");
        assert!(backoff_delay(2, initial, max, u32::MAX / 2) > backoff_delay(2, initial, max, 0));
    }

    #[test]
    fn committee_id_depends_on_every_member() {
        let a: BTreeSet<_> = [PeerId::from_bytes([1; 32]), PeerId::from_bytes([2; 32])].into();
        let b: BTreeSet<_> = [PeerId::from_bytes([1; 32]), PeerId::from_bytes([3; 32])].into();
        assert_ne!(committee_id(&a), committee_id(&b));
        assert_eq!(committee_id(&a), committee_id(&a.clone()));
    }
}
