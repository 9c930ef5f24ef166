//! TLS for end-to-end tests: certificates made at test time (rcgen) and written as PEM
//! files that sluice's config names, rustls clients that report what they negotiated,
//! and TLS origins.
//!
//! Nothing here is shared with sluice's own TLS code: the clients and origins are plain
//! rustls over std sockets, so a test checks sluice against an independent peer.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::crypto::ring::default_provider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection, StreamOwned};

/// A directory of PEM files, removed on drop.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

impl Pki {
    pub fn new() -> Pki {
        Pki { dir: tempfile::tempdir().unwrap() }
    }

    fn write(&self, name: &str, pem: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path
    }

    /// A self-signed CA; its certificate is written to `NAME-ca.pem`.
    pub fn ca(&self, name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let pem_path = self.write(&format!("{name}-ca.pem"), &issuer.pem());
        Ca { issuer, pem_path, name: name.to_string() }
    }
}

/// A certificate authority that signs leaves.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate (PEM), for `trusted_ca: { filename: ... }`.
    pub pem_path: PathBuf,
    name: String,
}

impl Ca {
    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A server certificate for `names` (DNS names, `*.x` wildcards, or IPs).
    pub fn server_cert(&self, pki: &Pki, file: &str, names: &[&str]) -> Leaf {
        self.leaf(pki, file, names, &[], ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate (clientAuth) for `names`.
    pub fn client_cert(&self, pki: &Pki, file: &str, names: &[&str]) -> Leaf {
        self.leaf(pki, file, names, &[], ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// [`Ca::server_cert`] with URI subject alternative names `uris` as well.
    pub fn server_cert_with_uris(&self, pki: &Pki, file: &str, names: &[&str], uris: &[&str]) -> Leaf {
        self.leaf(pki, file, names, uris, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// [`Ca::client_cert`] with URI subject alternative names `uris` as well.
    pub fn client_cert_with_uris(&self, pki: &Pki, file: &str, names: &[&str], uris: &[&str]) -> Leaf {
        self.leaf(pki, file, names, uris, ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn leaf(&self, pki: &Pki, file: &str, names: &[&str], uris: &[&str], purpose: ExtendedKeyUsagePurpose) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        for uri in uris {
            params.subject_alt_names.push(rcgen::SanType::URI((*uri).try_into().unwrap()));
        }
        params.distinguished_name.push(DnType::CommonName, format!("{file} ({})", self.name));
        params.extended_key_usages = vec![purpose];
        let cert = params.signed_by(&key, &*self.issuer).unwrap();
        let chain_path = pki.write(&format!("{file}.crt"), &cert.pem());
        let key_path = pki.write(&format!("{file}.key"), &key.serialize_pem());
        Leaf { der: cert.der().clone(), key_der: key.serialize_der(), chain_path, key_path }
    }
}

/// A leaf certificate and its key, as files and as DER.
pub struct Leaf {
    pub der: CertificateDer<'static>,
    key_der: Vec<u8>,
    pub chain_path: PathBuf,
    pub key_path: PathBuf,
}

impl Leaf {
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    /// `{ certificate_chain: { filename }, private_key: { filename } }` (flow YAML).
    pub fn yaml(&self) -> String {
        format!(
            "{{ certificate_chain: {{ filename: \"{}\" }}, private_key: {{ filename: \"{}\" }} }}",
            self.chain_path.display(),
            self.key_path.display()
        )
    }
}

fn quoted_list(items: &[&str]) -> String {
    let items: Vec<String> = items.iter().map(|i| format!("\"{i}\"")).collect();
    format!("[{}]", items.join(", "))
}

/// A filter chain's `transport_socket` with a DownstreamTlsContext (flow YAML, one
/// line): `cert`, ALPN `alpn`, and with `client_ca` a validation context, the client
/// certificate required when `require_client_certificate`.
pub fn downstream_tls_yaml(cert: &Leaf, alpn: &[&str], client_ca: Option<&Path>, require: bool) -> String {
    let validation = match client_ca {
        Some(ca) => format!(", validation_context: {{ trusted_ca: {{ filename: \"{}\" }} }}", ca.display()),
        None => String::new(),
    };
    format!(
        "{{ name: envoy.transport_sockets.tls, typed_config: {{ \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext, require_client_certificate: {require}, common_tls_context: {{ tls_certificates: [ {} ], alpn_protocols: {}{validation} }} }} }}",
        cert.yaml(),
        quoted_list(alpn),
    )
}

/// A cluster's `transport_socket` with an UpstreamTlsContext (flow YAML, one line):
/// `sni` (empty: none), `trusted_ca` when given, and `auto_sni_san_validation` (the
/// origin's certificate must then name the SNI).
pub fn upstream_tls_yaml(sni: &str, trusted_ca: Option<&Path>, auto_sni_san: bool) -> String {
    let validation = match trusted_ca {
        Some(ca) => format!(
            "common_tls_context: {{ validation_context: {{ trusted_ca: {{ filename: \"{}\" }} }} }}",
            ca.display()
        ),
        None => "common_tls_context: {}".to_string(),
    };
    let sni = if sni.is_empty() { String::new() } else { format!("sni: \"{sni}\", ") };
    format!(
        "{{ name: envoy.transport_sockets.tls, typed_config: {{ \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, {sni}auto_sni_san_validation: {auto_sni_san}, {validation} }} }}"
    )
}

/// A rustls client config trusting `roots`, offering `alpn`, presenting `cert`.
pub fn client_config(roots: &[&Ca], alpn: &[&str], cert: Option<&Leaf>) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    for ca in roots {
        store.add(ca.der()).unwrap();
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store);
    let mut config = match cert {
        Some(leaf) => builder.with_client_auth_cert(vec![leaf.der.clone()], leaf.key()).unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(config)
}

/// A rustls server config serving `cert` (no client authentication).
pub fn server_config(cert: &Leaf, alpn: &[&str]) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der.clone()], cert.key())
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(config)
}

/// A TLS client connection (blocking, 20 s read timeout).
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

fn server_name(name: &str) -> ServerName<'static> {
    ServerName::try_from(name.to_string()).expect("a DNS name or an IP address")
}

/// Connect to `addr` and complete a handshake for `name` (an IP address sends no SNI).
pub fn connect(addr: SocketAddr, name: &str, config: &Arc<ClientConfig>) -> io::Result<TlsStream> {
    let tcp = TcpStream::connect(addr)?;
    handshake(tcp, name, config)
}

/// Complete a client handshake on `tcp`.
pub fn handshake(mut tcp: TcpStream, name: &str, config: &Arc<ClientConfig>) -> io::Result<TlsStream> {
    tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
    tcp.set_nodelay(true)?;
    let mut conn = ClientConnection::new(config.clone(), server_name(name)).map_err(io::Error::other)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)?;
    }
    Ok(StreamOwned::new(conn, tcp))
}

/// Like [`connect`], but the ClientHello goes out one byte per TCP segment (`gap`
/// between them, Nagle off), so the proxy sees it arrive across many reads.
pub fn connect_trickled(
    addr: SocketAddr,
    name: &str,
    config: &Arc<ClientConfig>,
    gap: Duration,
) -> io::Result<TlsStream> {
    let mut tcp = TcpStream::connect(addr)?;
    tcp.set_nodelay(true)?;
    let mut conn = ClientConnection::new(config.clone(), server_name(name)).map_err(io::Error::other)?;
    let mut hello = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut hello)?;
    }
    assert!(hello.len() > 100, "a ClientHello of {} bytes", hello.len());
    for byte in &hello {
        tcp.write_all(std::slice::from_ref(byte))?;
        std::thread::sleep(gap);
    }
    handshake_continue(tcp, conn)
}

fn handshake_continue(mut tcp: TcpStream, mut conn: ClientConnection) -> io::Result<TlsStream> {
    tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)?;
    }
    Ok(StreamOwned::new(conn, tcp))
}

/// Read one `\n`-terminated line (without the `\n`) from any reader, a byte at a time
/// (so nothing after the line is consumed).
pub fn read_line(r: &mut impl Read) -> io::Result<String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match r.read(&mut b)? {
            0 => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("EOF after {line:?}"))),
            _ if b[0] == b'\n' => return Ok(String::from_utf8_lossy(&line).into_owned()),
            _ => line.push(b[0]),
        }
    }
}

/// What a TLS origin saw.
#[derive(Default)]
struct Seen {
    handshakes: AtomicUsize,
    failed_handshakes: AtomicUsize,
    /// Plaintext received after handshakes, all connections.
    plaintext: Mutex<Vec<u8>>,
    /// Request heads (HTTP origins).
    requests: Mutex<Vec<String>>,
}

/// A TLS origin on 127.0.0.1: echo (with a tag line first) or a small HTTP/1.1
/// responder. Stopped on drop.
pub struct TlsOrigin {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    seen: Arc<Seen>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Clone, Copy)]
enum Behaviour {
    Echo,
    Http,
}

impl TlsOrigin {
    /// Writes `TAG\n` after the handshake, then echoes until EOF (then close_notify).
    pub fn echo(config: Arc<ServerConfig>, tag: &str) -> TlsOrigin {
        Self::start(config, tag, Behaviour::Echo)
    }

    /// Answers each HTTP/1.1 request with 200, `x-origin: TAG` and a body listing the
    /// request head; records the heads.
    pub fn http(config: Arc<ServerConfig>, tag: &str) -> TlsOrigin {
        Self::start(config, tag, Behaviour::Http)
    }

    fn start(config: Arc<ServerConfig>, tag: &str, behaviour: Behaviour) -> TlsOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Seen::default());
        let (st, se, tag) = (Arc::clone(&stop), Arc::clone(&seen), tag.to_string());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((tcp, _)) => {
                        tcp.set_nonblocking(false).unwrap();
                        let (config, seen, tag) = (config.clone(), Arc::clone(&se), tag.clone());
                        std::thread::spawn(move || serve_tls(tcp, config, &seen, &tag, behaviour));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        TlsOrigin { addr, stop, seen, thread: Some(thread) }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Completed handshakes.
    pub fn handshakes(&self) -> usize {
        self.seen.handshakes.load(Ordering::Relaxed)
    }

    /// Handshakes that failed (alert, reset, garbage).
    pub fn failed_handshakes(&self) -> usize {
        self.seen.failed_handshakes.load(Ordering::Relaxed)
    }

    /// Every plaintext byte received so far.
    pub fn plaintext(&self) -> Vec<u8> {
        self.seen.plaintext.lock().unwrap().clone()
    }

    /// HTTP request heads received (HTTP origins).
    pub fn requests(&self) -> Vec<String> {
        self.seen.requests.lock().unwrap().clone()
    }
}

impl Drop for TlsOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_tls(mut tcp: TcpStream, config: Arc<ServerConfig>, seen: &Seen, tag: &str, behaviour: Behaviour) {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(20)));
    let mut conn = ServerConnection::new(config).unwrap();
    while conn.is_handshaking() {
        if conn.complete_io(&mut tcp).is_err() {
            seen.failed_handshakes.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    seen.handshakes.fetch_add(1, Ordering::Relaxed);
    let mut tls = StreamOwned::new(conn, tcp);
    match behaviour {
        Behaviour::Echo => {
            if tls.write_all(format!("{tag}\n").as_bytes()).is_err() {
                return;
            }
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match tls.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        seen.plaintext.lock().unwrap().extend_from_slice(&buf[..n]);
                        if tls.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
        Behaviour::Http => serve_http(tls, seen, tag),
    }
}

fn serve_http(tls: StreamOwned<ServerConnection, TcpStream>, seen: &Seen, tag: &str) {
    let mut reader = BufReader::new(tls);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            seen.plaintext.lock().unwrap().extend_from_slice(line.as_bytes());
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let length = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        seen.requests.lock().unwrap().push(head.clone());
        let out = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-origin: {tag}\r\n\r\n{head}", head.len());
        let tls = reader.get_mut();
        if tls.write_all(out.as_bytes()).and_then(|_| tls.flush()).is_err() {
            return;
        }
    }
}

/// A parsed HTTP/1.1 response read off a TLS stream.
pub struct TlsResponse {
    pub status: u16,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl TlsResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Send `GET path` (host `host`) on `stream` and read one content-length response.
pub fn http_get(stream: &mut (impl Read + Write), host: &str, path: &str) -> io::Result<TlsResponse> {
    stream.write_all(format!("GET {path} HTTP/1.1\r\nhost: {host}\r\n\r\n").as_bytes())?;
    stream.flush()?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        if stream.read(&mut b)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("closed after {:?}", String::from_utf8_lossy(&head)),
            ));
        }
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body)?;
    Ok(TlsResponse { status, headers, body })
}
