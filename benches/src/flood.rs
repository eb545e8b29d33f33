//! Attested bonds while unauthenticated peers flood the acceptor, on loopback.
//!
//! One acceptor (TdxRaTlsBidirectional, synthetic quotes) runs on a tokio runtime of its own,
//! whose threads (workers and blocking pool) are the only ones counted as the acceptor's CPU.
//! Everything else (honest dialers, flooders) runs on a second runtime. Two phases of equal
//! length run one after the other: honest bonds alone, then honest bonds under the flood. Each
//! reports the honest bonds' latency (from `connect` to the connection the application
//! receives), the acceptor's CPU, and how many flood attempts of each kind completed:
//!
//! - `garbage`: certificates whose evidence extension holds random bytes, or a genuine quote
//!   with one byte of its TD report flipped (its signature no longer verifies);
//! - `harvested`: a genuine quote taken from an honest dialer's certificate, in a certificate
//!   of the flooder's own key, its unsigned PEM chain varied on every attempt (trailing
//!   whitespace), so each attempt is a new byte form of the same quote;
//! - `half-open`: QUIC Initials that are never followed up. Each flooder makes real Initials
//!   with a quinn client aimed at a relay socket, and the relay sends the first datagram of
//!   each connection on to the acceptor from a socket that never reads what comes back.
//!
//! The acceptor takes connections in one task that keeps every pending acceptance in a
//! `FuturesUnordered`, so a half-open attempt holds no accept slot. Honest dialers lift the
//! per-peer bond quote rate as the soak does (`PeerRate::new(u32::MAX, 1e9)`).

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::stream::{FuturesUnordered, StreamExt};
use ratls_quic::synthetic::{SyntheticPki, SyntheticPkiParams};
use ratls_quic::{
    issue_certificate, parse_certificate, AttestationLevel, Endpoint, ExpectedPeer, Identity,
    QuoteLayout, ALPN,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::Serialize;

use crate::procstat::{self, ThreadGroup};
use crate::soak::{config, unix_now};
use crate::stats::Stats;

/// What a flood run does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FloodOptions {
    /// Length of each phase, seconds.
    pub seconds: u64,
    /// Honest dialers (each its own endpoint), bonding back to back.
    pub bonders: usize,
    /// Concurrent `garbage` flooders.
    pub garbage: usize,
    /// Concurrent `harvested` flooders.
    pub harvested: usize,
    /// Concurrent `half-open` flooders.
    pub half_open: usize,
    /// Most attempts per second of each flooder (0: as fast as it can).
    pub max_rate: u64,
    /// Worker threads of the acceptor's runtime.
    pub acceptor_threads: usize,
    /// Worker threads of the dialers' and flooders' runtime.
    pub client_threads: usize,
    /// Socket buffers asked for on the attested endpoints, bytes.
    pub socket_buffer: usize,
}

impl Default for FloodOptions {
    fn default() -> Self {
        Self {
            seconds: 10,
            bonders: 2,
            garbage: 8,
            harvested: 8,
            half_open: 2,
            max_rate: 0,
            acceptor_threads: 2,
            client_threads: 2,
            socket_buffer: 4 << 20,
        }
    }
}

/// One phase's figures.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseReport {
    /// `baseline` or `flood`.
    pub name: String,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Honest bonds formed.
    pub bonds: usize,
    /// Honest bond attempts that failed.
    pub bond_failures: u64,
    /// The first honest failure, if any.
    pub first_failure: Option<String>,
    /// Honest bond latency.
    pub latency: Option<Stats>,
    /// CPU time of the acceptor's threads, seconds.
    pub acceptor_cpu_s: f64,
    /// The same per second of wall time (1.0 = one core busy).
    pub acceptor_cores: f64,
    /// CPU time of the whole process, seconds.
    pub process_cpu_s: f64,
    /// Flood attempts completed per kind: garbage, harvested, half-open.
    pub flood_attempts: [u64; 3],
    /// Flood attempts per second per kind.
    pub flood_rate: [f64; 3],
    /// Connections the acceptor established in the phase.
    pub acceptor_established: u64,
    /// Attempts the acceptor refused or lost in the phase (flood and honest).
    pub acceptor_failed: u64,
    /// Errors that stopped a flooder (none expected).
    pub flood_errors: Vec<String>,
}

impl PhaseReport {
    /// One line.
    pub fn summary(&self) -> String {
        let (p50, p99) = self
            .latency
            .as_ref()
            .map_or((f64::NAN, f64::NAN), |l| (l.p50_us, l.p99_us));
        format!(
            "{:<8} {:.1} s: {} bonds ({} failed), p50 {:.0} µs, p99 {:.0} µs; acceptor CPU {:.2} \
             s ({:.2} cores), established {}, failed {}; flood/s garbage {:.0}, harvested {:.0}, \
             half-open {:.0}",
            self.name,
            self.seconds,
            self.bonds,
            self.bond_failures,
            p50,
            p99,
            self.acceptor_cpu_s,
            self.acceptor_cores,
            self.acceptor_established,
            self.acceptor_failed,
            self.flood_rate[0],
            self.flood_rate[1],
            self.flood_rate[2],
        )
    }
}

/// A whole run.
#[derive(Clone, Debug, Serialize)]
pub struct FloodReport {
    /// What ran.
    pub options: FloodOptions,
    /// Honest bonds alone.
    pub baseline: PhaseReport,
    /// Honest bonds under the flood.
    pub flood: PhaseReport,
}

#[derive(Debug, Default)]
struct AcceptorCounts {
    established: AtomicU64,
    failed: AtomicU64,
}

#[derive(Debug, Default)]
struct FloodCounts {
    attempts: [AtomicU64; 3],
}

/// Runs both phases. Builds its own runtimes: call from outside any runtime.
pub fn run_flood(options: &FloodOptions) -> Result<FloodReport> {
    let acceptor_threads = ThreadGroup::default();
    let acceptor_rt = {
        let group = acceptor_threads.clone();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.acceptor_threads.max(1))
            .thread_name("acceptor")
            .on_thread_start(move || group.register_current())
            // Blocking-pool threads must outlive the phases to be counted.
            .thread_keep_alive(Duration::from_secs(3600))
            .enable_all()
            .build()?
    };
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.client_threads.max(1))
        .thread_name("dialers")
        .enable_all()
        .build()?;

    let pki = Arc::new(SyntheticPki::generate(SyntheticPkiParams::new(
        unix_now()?.saturating_sub(86_400),
    ))?);
    let counts = Arc::new(AcceptorCounts::default());
    let server = {
        let pki = Arc::clone(&pki);
        let buffer = options.socket_buffer;
        acceptor_rt.block_on(async move {
            anyhow::Ok(Arc::new(
                Endpoint::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config(&pki, buffer)?)
                    .await?,
            ))
        })?
    };
    let server_addr = server.local_addr()?;
    let server_peer = server.peer_id();
    acceptor_rt.spawn(accept_all(Arc::clone(&server), Arc::clone(&counts)));

    let report = client_rt.block_on(async {
        let mut bonders = Vec::with_capacity(options.bonders);
        for _ in 0..options.bonders.max(1) {
            let endpoint = Endpoint::bind(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                config(&pki, options.socket_buffer)?,
            )
            .await?;
            // Warm-up: one bond each.
            endpoint
                .connect(server_addr, ExpectedPeer::Exactly(server_peer))
                .await
                .context("warm-up bond")?
                .close(0u32.into(), b"warm");
            bonders.push(Arc::new(endpoint));
        }
        // A genuine quote, harvested from an honest dialer's certificate.
        let harvested = parse_certificate(&bonders[0].current_certificate())?
            .evidence
            .context("honest certificate without evidence")?
            .quote;
        let ctx = Ctx {
            server_addr,
            server_peer,
            bonders,
            harvested: Arc::new(harvested),
            counts: Arc::clone(&counts),
            acceptor_threads: acceptor_threads.clone(),
        };
        let baseline = phase(&ctx, options, false).await?;
        let flood = phase(&ctx, options, true).await?;
        for b in &ctx.bonders {
            b.close();
        }
        anyhow::Ok(FloodReport {
            options: options.clone(),
            baseline,
            flood,
        })
    })?;
    server.close();
    drop(client_rt);
    drop(acceptor_rt);
    Ok(report)
}

struct Ctx {
    server_addr: SocketAddr,
    server_peer: ratls_quic::PeerId,
    bonders: Vec<Arc<Endpoint>>,
    harvested: Arc<Vec<u8>>,
    counts: Arc<AcceptorCounts>,
    acceptor_threads: ThreadGroup,
}

async fn phase(ctx: &Ctx, options: &FloodOptions, flood: bool) -> Result<PhaseReport> {
    let window = Duration::from_secs(options.seconds);
    let stop = Arc::new(AtomicBool::new(false));
    let flood_counts = Arc::new(FloodCounts::default());
    let mut flooders = Vec::new();
    if flood {
        for i in 0..options.garbage {
            flooders.push(tokio::spawn(garbage(
                ctx.server_addr,
                Arc::clone(&ctx.harvested),
                i as u64,
                options.max_rate,
                Arc::clone(&stop),
                Arc::clone(&flood_counts),
            )));
        }
        for i in 0..options.harvested {
            flooders.push(tokio::spawn(harvested(
                ctx.server_addr,
                Arc::clone(&ctx.harvested),
                i as u64,
                options.max_rate,
                Arc::clone(&stop),
                Arc::clone(&flood_counts),
            )));
        }
        for _ in 0..options.half_open {
            flooders.push(tokio::spawn(half_open(
                ctx.server_addr,
                options.max_rate,
                Arc::clone(&stop),
                Arc::clone(&flood_counts),
            )));
        }
        // Let the flood reach its rate before honest bonds are timed.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let established0 = ctx.counts.established.load(Ordering::SeqCst);
    let failed0 = ctx.counts.failed.load(Ordering::SeqCst);
    let flood0: Vec<u64> = flood_counts
        .attempts
        .iter()
        .map(|a| a.load(Ordering::SeqCst))
        .collect();
    let cpu0 = ctx.acceptor_threads.cpu();
    let process0 = procstat::process_cpu()?;
    let start = Instant::now();

    let failures = Arc::new(AtomicU64::new(0));
    let first_failure = Arc::new(Mutex::new(None::<String>));
    let loops: Vec<_> = ctx
        .bonders
        .iter()
        .map(|d| {
            let d = Arc::clone(d);
            let (addr, peer) = (ctx.server_addr, ctx.server_peer);
            let failures = Arc::clone(&failures);
            let first_failure = Arc::clone(&first_failure);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while start.elapsed() < window {
                    let t = Instant::now();
                    match d.connect(addr, ExpectedPeer::Exactly(peer)).await {
                        Ok(conn) => {
                            latencies.push(t.elapsed());
                            conn.close(0u32.into(), b"done");
                        }
                        Err(e) => {
                            failures.fetch_add(1, Ordering::SeqCst);
                            first_failure
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .get_or_insert_with(|| format!("{e:#}"));
                        }
                    }
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in loops {
        latencies.extend(task.await?);
    }
    let seconds = start.elapsed().as_secs_f64();
    let acceptor_cpu = ctx.acceptor_threads.cpu().saturating_sub(cpu0);
    let process_cpu = procstat::process_cpu()?.saturating_sub(process0);
    let flood_attempts: Vec<u64> = flood_counts
        .attempts
        .iter()
        .zip(&flood0)
        .map(|(a, b)| a.load(Ordering::SeqCst) - b)
        .collect();
    let established = ctx.counts.established.load(Ordering::SeqCst) - established0;
    let failed = ctx.counts.failed.load(Ordering::SeqCst) - failed0;
    stop.store(true, Ordering::SeqCst);
    let mut flood_errors = Vec::new();
    for f in flooders {
        match tokio::time::timeout(Duration::from_secs(10), f).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => flood_errors.push(format!("{e:#}")),
            Ok(Err(e)) => flood_errors.push(format!("flooder task: {e}")),
            Err(_) => flood_errors.push("flooder did not stop in 10 s".to_owned()),
        }
    }
    flood_errors.dedup();
    let flood_attempts = [flood_attempts[0], flood_attempts[1], flood_attempts[2]];
    let first_failure = first_failure
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    Ok(PhaseReport {
        name: if flood { "flood" } else { "baseline" }.to_owned(),
        seconds,
        bonds: latencies.len(),
        bond_failures: failures.load(Ordering::SeqCst),
        first_failure,
        latency: Stats::from_samples(&latencies),
        acceptor_cpu_s: acceptor_cpu.as_secs_f64(),
        acceptor_cores: acceptor_cpu.as_secs_f64() / seconds,
        process_cpu_s: process_cpu.as_secs_f64(),
        flood_attempts,
        flood_rate: flood_attempts.map(|n| n as f64 / seconds),
        acceptor_established: established,
        acceptor_failed: failed,
        flood_errors,
    })
}

/// Takes every incoming connection and keeps all pending acceptances in one set, so no
/// attempt, however slow, holds up another.
async fn accept_all(server: Arc<Endpoint>, counts: Arc<AcceptorCounts>) {
    let mut pending = FuturesUnordered::new();
    loop {
        tokio::select! {
            incoming = server.accept() => {
                let Some(accepting) = incoming else { break };
                pending.push(accepting.establish());
            }
            Some(result) = pending.next(), if !pending.is_empty() => match result {
                Ok(conn) => {
                    counts.established.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(async move { conn.closed().await });
                }
                Err(_) => {
                    counts.failed.fetch_add(1, Ordering::SeqCst);
                }
            },
        }
    }
}

/// Spaces a flooder's attempts to at most `rate` a second (0: no spacing).
struct Pace {
    interval: Option<Duration>,
    next: tokio::time::Instant,
}

impl Pace {
    fn new(rate: u64) -> Self {
        Self {
            interval: (rate > 0).then(|| Duration::from_secs_f64(1.0 / rate as f64)),
            next: tokio::time::Instant::now(),
        }
    }

    async fn wait(&mut self) {
        if let Some(interval) = self.interval {
            tokio::time::sleep_until(self.next).await;
            self.next += interval;
        }
    }
}

const GARBAGE: usize = 0;
const HARVESTED: usize = 1;
const HALF_OPEN: usize = 2;

/// A small deterministic generator for garbage (xorshift64*).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// One attempt with `cert` as the client certificate: dial, wait for the refusal.
async fn attempt(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<()> {
    let tls = client_tls(Some((cert, key)))?;
    let connecting = endpoint.connect_with(tls, addr, "ratls.invalid")?;
    // The client may finish its side of the handshake before the acceptor judged its
    // certificate: then the refusal arrives as a close.
    if let Ok(Ok(conn)) = tokio::time::timeout(Duration::from_secs(5), connecting).await {
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
    }
    Ok(())
}

async fn garbage(
    addr: SocketAddr,
    genuine: Arc<Vec<u8>>,
    seed: u64,
    rate: u64,
    stop: Arc<AtomicBool>,
    counts: Arc<FloodCounts>,
) -> Result<()> {
    let mut pace = Pace::new(rate);
    let endpoint = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let identity = Identity::generate()?;
    let mut noise = Noise(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let now = unix_now()?;
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        pace.wait().await;
        let mut quote = genuine.as_ref().clone();
        if n.is_multiple_of(2) {
            noise.fill(&mut quote);
        } else {
            // A genuine layout whose TD report no longer matches its signature.
            let at = 48 + (noise.next() as usize % 584);
            quote[at] ^= 1 << (noise.next() % 8);
        }
        n += 1;
        let issued = issue_certificate(
            &identity,
            now - 60,
            now + 3600,
            Some((AttestationLevel::TdxLocal, &quote)),
        )?;
        attempt(&endpoint, addr, issued.cert_der, issued.key_der.clone_key()).await?;
        counts.attempts[GARBAGE].fetch_add(1, Ordering::SeqCst);
    }
    endpoint.close(0u32.into(), b"");
    Ok(())
}

async fn harvested(
    addr: SocketAddr,
    genuine: Arc<Vec<u8>>,
    seed: u64,
    rate: u64,
    stop: Arc<AtomicBool>,
    counts: Arc<FloodCounts>,
) -> Result<()> {
    let mut pace = Pace::new(rate);
    let endpoint = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let identity = Identity::generate()?;
    let now = unix_now()?;
    let mut n = seed << 32;
    while !stop.load(Ordering::SeqCst) {
        pace.wait().await;
        let quote = vary_pem_chain(&genuine, n)?;
        n += 1;
        let issued = issue_certificate(
            &identity,
            now - 60,
            now + 3600,
            Some((AttestationLevel::TdxLocal, &quote)),
        )?;
        attempt(&endpoint, addr, issued.cert_der, issued.key_der.clone_key()).await?;
        counts.attempts[HARVESTED].fetch_add(1, Ordering::SeqCst);
    }
    endpoint.close(0u32.into(), b"");
    Ok(())
}

/// The same quote with whitespace after its PEM chain that encodes `variant` (one of four
/// whitespace bytes per two bits, 1 to 33 bytes), and the three length fields that enclose
/// the chain (signature data, certification data, PCK chain) grown to match. No signature
/// covers any of these bytes.
pub fn vary_pem_chain(quote: &[u8], variant: u64) -> Result<Vec<u8>> {
    let layout = QuoteLayout::parse(quote)?;
    let mut extra = Vec::new();
    let mut v = variant;
    loop {
        extra.push([b'\n', b' ', b'\r', b'\t'][(v & 3) as usize]);
        v >>= 2;
        if v == 0 {
            break;
        }
    }
    let mut out = quote
        .get(..layout.canonical_len)
        .context("quote shorter than its layout")?
        .to_vec();
    out.extend_from_slice(&extra);
    let grow = |out: &mut Vec<u8>, at: usize| -> Result<()> {
        let field = out.get_mut(at..at + 4).context("length field")?;
        let old = u32::from_le_bytes(field.try_into()?);
        field.copy_from_slice(&(old + extra.len() as u32).to_le_bytes());
        Ok(())
    };
    let sig_offset = layout.signed_len + 4;
    grow(&mut out, layout.signed_len)?;
    grow(&mut out, sig_offset + 128 + 2)?;
    grow(&mut out, layout.pck_chain_offset - 4)?;
    Ok(out)
}

async fn half_open(
    addr: SocketAddr,
    rate: u64,
    stop: Arc<AtomicBool>,
    counts: Arc<FloodCounts>,
) -> Result<()> {
    let mut pace = Pace::new(rate);
    let relay = tokio::net::UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let relay_addr = relay.local_addr()?;
    // Sends to the acceptor and never reads: what comes back is dropped by the kernel.
    let out = tokio::net::UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let client = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let tls = client_tls(None)?;
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut open: VecDeque<quinn::Connecting> = VecDeque::new();
    let mut buf = vec![0u8; 2048];
    while !stop.load(Ordering::SeqCst) {
        pace.wait().await;
        open.push_back(client.connect_with(tls.clone(), relay_addr, "ratls.invalid")?);
        if open.len() > 256 {
            open.pop_front();
        }
        // Forward the first datagram of each connection (its Initial): retransmissions and the
        // close a dropped attempt sends share its connection id and stay here.
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(20), relay.recv(&mut buf)).await
        {
            let Some(datagram) = buf.get(..n) else { break };
            let Some(dcid) = long_header_dcid(datagram) else {
                continue;
            };
            if seen.insert(dcid.to_vec()) {
                out.send_to(datagram, addr).await?;
                counts.attempts[HALF_OPEN].fetch_add(1, Ordering::SeqCst);
                break;
            }
        }
    }
    drop(open);
    client.close(0u32.into(), b"");
    Ok(())
}

/// The destination connection id of a QUIC long-header packet.
fn long_header_dcid(datagram: &[u8]) -> Option<&[u8]> {
    if datagram.first()? & 0x80 == 0 {
        return None;
    }
    let len = usize::from(*datagram.get(5)?);
    datagram.get(6..6 + len)
}

fn client_tls(
    auth: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
) -> Result<quinn::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer));
    let mut tls = match auth {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder.with_client_auth_cert(vec![cert], key)?,
    };
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    Ok(quinn::ClientConfig::new(Arc::new(quic)))
}

/// Accepts any server certificate: a flooder does not care whom it floods.
#[derive(Debug)]
struct AnyServer;

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &crate::tls::provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        crate::tls::provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratls_quic::synthetic::{sample_measurements, QuoteSpec, SyntheticTcb};
    use ratls_quic::{canonical_quote, pck_chain_pem, ReportData};

    #[test]
    fn varied_chains_are_distinct_well_formed_quotes_of_the_same_signed_bytes() {
        let pki = SyntheticPki::generate(SyntheticPkiParams::new(1_700_000_000)).unwrap();
        let quote = pki
            .quote(&QuoteSpec {
                report_data: ReportData([7; 64]),
                measurements: sample_measurements(),
                tcb: SyntheticTcb::UpToDate,
            })
            .unwrap();
        let layout = QuoteLayout::parse(&quote).unwrap();
        let mut forms = HashSet::new();
        for variant in [0, 1, 2, 3, 4, 1000, u64::MAX] {
            let varied = vary_pem_chain(&quote, variant).unwrap();
            assert_eq!(canonical_quote(&varied).unwrap(), varied.as_slice());
            assert_eq!(varied[..layout.signed_len], quote[..layout.signed_len]);
            assert!(pck_chain_pem(&varied)
                .unwrap()
                .starts_with(pck_chain_pem(&quote).unwrap()));
            assert!(forms.insert(varied));
        }
    }

    #[test]
    fn dcid_of_a_long_header() {
        let packet = [0xc0, 0, 0, 0, 1, 3, 9, 8, 7, 0];
        assert_eq!(long_header_dcid(&packet), Some(&[9, 8, 7][..]));
        assert_eq!(long_header_dcid(&[0x40, 1, 2]), None);
        assert_eq!(long_header_dcid(&[0xc0, 0, 0, 0, 1, 9, 1]), None);
    }
}
