//! Serving the log to auditors and pulling it from a node, over QUIC bidirectional streams of
//! a connection whose peer identity is known (one request per stream, see [`super::protocol`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::codec::{self, SegmentHeader};
use super::protocol::{self, Request, ResponseError, Status, MAX_BATCH_BYTES, MAX_BATCH_RECORDS};
use super::shared::EvidenceLog;
use super::store::{segment_path, COLLATERAL_DIR};
use super::{Checkpoint, Digest, LogError, Record, RecordBody};
use crate::identity::PeerId;

/// How long a server waits for a request, and for a puller to take a response.
pub const SERVE_TIMEOUT: Duration = Duration::from_secs(30);

/// Who may pull a node's log.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditAccess {
    /// Anyone who completes the handshake.
    Public,
    /// Only these identities.
    AllowList(BTreeSet<PeerId>),
}

impl AuditAccess {
    /// Whether `peer` may pull.
    pub fn allows(&self, peer: &PeerId) -> bool {
        match self {
            Self::Public => true,
            Self::AllowList(list) => list.contains(peer),
        }
    }
}

/// Answers evidence requests on `conn` from `peer` until the connection closes. Requests on
/// one connection are answered one at a time, each response bounded and each wait timed out,
/// so a slow or hostile reader holds at most one response and one task.
pub async fn serve_connection(
    conn: quinn::Connection,
    peer: PeerId,
    log: EvidenceLog,
    access: AuditAccess,
) {
    loop {
        let Ok((mut send, mut recv)) = conn.accept_bi().await else {
            return;
        };
        let request =
            tokio::time::timeout(SERVE_TIMEOUT, recv.read_to_end(protocol::MAX_REQUEST_LEN)).await;
        let response = match request {
            Ok(Ok(bytes)) => respond(&bytes, &peer, &log, &access).await,
            Ok(Err(_)) => protocol::encode_status(Status::BadRequest),
            Err(_) => return,
        };
        let sent = tokio::time::timeout(SERVE_TIMEOUT, async {
            send.write_all(&response).await?;
            send.finish()?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            tracing::debug!(%peer, "evidence reader did not take its response; dropping the stream");
            let _ = send.reset(0u32.into());
        }
    }
}

async fn respond(bytes: &[u8], peer: &PeerId, log: &EvidenceLog, access: &AuditAccess) -> Vec<u8> {
    let Ok(request) = Request::decode(bytes) else {
        return protocol::encode_status(Status::BadRequest);
    };
    if !access.allows(peer) {
        tracing::info!(%peer, "evidence request refused: not on the audit allow-list");
        return protocol::encode_status(Status::Refused);
    }
    match request {
        Request::Records { from, max } => {
            let max = max.min(MAX_BATCH_RECORDS) as usize;
            match log.batch(from, max, MAX_BATCH_BYTES).await {
                Ok(batch) => protocol::encode_records(&batch),
                Err(error) => {
                    tracing::warn!(%error, "evidence log unreadable");
                    protocol::encode_status(Status::Unavailable)
                }
            }
        }
        Request::Collateral(digest) => match log.collateral_json(digest).await {
            Ok(Some(json)) => protocol::encode_collateral(&json)
                .unwrap_or_else(|_| protocol::encode_status(Status::Unavailable)),
            Ok(None) => protocol::encode_status(Status::NotFound),
            Err(_) => protocol::encode_status(Status::Unavailable),
        },
    }
}

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PullError {
    /// The connection failed.
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// A stream failed.
    #[error("stream: {0}")]
    Stream(String),
    /// The server's answer was not usable.
    #[error("{0}")]
    Response(#[from] ResponseError),
    /// The server sent collateral that does not have the digest asked for.
    #[error("collateral {0} sent by the server does not match its digest")]
    CollateralMismatch(String),
    /// The server announced more records than the puller accepts.
    #[error("the log holds {0} records, more than the {1} accepted")]
    TooLarge(u64, u64),
    /// The server did not answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Writing the local copy failed.
    #[error("local copy: {0}")]
    Log(#[from] LogError),
}

/// What a pull brought.
#[derive(Clone, Debug)]
pub struct Pulled {
    /// Records copied.
    pub records: u64,
    /// The node's latest checkpoint, as served.
    pub checkpoint: Option<Checkpoint>,
    /// Collateral documents copied.
    pub collateral: usize,
}

/// Most records a pull accepts.
pub const MAX_PULL_RECORDS: u64 = 10_000_000;

/// Pulls the whole log over `conn` into `mirror` (a new directory in the log format, one
/// segment, with the collateral the records name), ready for [`super::LogContents::read`] and
/// an audit. Frame digests are checked on arrival; everything else is the audit's job.
pub async fn pull(conn: &quinn::Connection, mirror: &Path) -> Result<Pulled, PullError> {
    let segment = segment_path(mirror, 0);
    let collateral_dir = mirror.join(COLLATERAL_DIR);
    let header = SegmentHeader {
        seq: 0,
        first_index: 0,
    }
    .encode()
    .to_vec();
    write_file(&segment, header, false).await?;
    let mut from = 0u64;
    let mut checkpoint = None;
    let mut digests: BTreeSet<Digest> = BTreeSet::new();
    loop {
        let bytes = ask(
            conn,
            Request::Records {
                from,
                max: MAX_BATCH_RECORDS,
            },
        )
        .await?;
        let batch = protocol::decode_records(&bytes)?;
        if batch.log_len > MAX_PULL_RECORDS {
            return Err(PullError::TooLarge(batch.log_len, MAX_PULL_RECORDS));
        }
        checkpoint = batch.checkpoint.or(checkpoint);
        if batch.frames.is_empty() {
            break;
        }
        let mut data = Vec::new();
        for frame in &batch.frames {
            collect_collateral(frame, &mut digests);
            data.extend_from_slice(frame);
        }
        from += batch.frames.len() as u64;
        write_file(&segment, data, true).await?;
        if from >= batch.log_len {
            break;
        }
    }
    for digest in &digests {
        let bytes = ask(conn, Request::Collateral(*digest)).await?;
        let json = match protocol::decode_collateral(&bytes) {
            Ok(json) => json,
            // Missing collateral is for the audit to report against the records naming it.
            Err(ResponseError::Status(Status::NotFound)) => continue,
            Err(e) => return Err(e.into()),
        };
        if blake3::hash(&json).as_bytes() != digest {
            return Err(PullError::CollateralMismatch(hex::encode(digest)));
        }
        let path = collateral_dir.join(format!("{}.json", hex::encode(digest)));
        write_file(&path, json, false).await?;
    }
    Ok(Pulled {
        records: from,
        checkpoint,
        collateral: digests.len(),
    })
}

fn collect_collateral(frame: &[u8], digests: &mut BTreeSet<Digest>) {
    let Ok(span) = codec::frame_at(frame, 0) else {
        return;
    };
    let Some(payload) = frame.get(span.payload_start..span.payload_end) else {
        return;
    };
    if let Ok(Record {
        body: RecordBody::BondFormed(b),
        ..
    }) = Record::decode(payload)
    {
        for q in [&b.cert_quote, &b.bond_quote].into_iter().flatten() {
            digests.insert(q.collateral_digest);
        }
    }
}

async fn ask(conn: &quinn::Connection, request: Request) -> Result<Vec<u8>, PullError> {
    let exchange = async {
        let (mut send, mut recv) = conn.open_bi().await?;
        send.write_all(&request.encode())
            .await
            .map_err(|e| PullError::Stream(e.to_string()))?;
        send.finish()
            .map_err(|e| PullError::Stream(e.to_string()))?;
        recv.read_to_end(protocol::MAX_RESPONSE_LEN)
            .await
            .map_err(|e| PullError::Stream(e.to_string()))
    };
    tokio::time::timeout(SERVE_TIMEOUT, exchange)
        .await
        .map_err(|_| PullError::Timeout(SERVE_TIMEOUT))?
}

async fn write_file(path: &Path, bytes: Vec<u8>, append: bool) -> Result<(), LogError> {
    let path: PathBuf = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let io = |source| LogError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(&path)
            .map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
        file.sync_data().map_err(io)
    })
    .await
    .map_err(|e| LogError::Io {
        path: PathBuf::new(),
        source: std::io::Error::other(e),
    })?
}
