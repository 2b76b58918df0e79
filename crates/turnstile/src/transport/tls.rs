//! TLS on listening endpoints (`endpoint.tls`), with rustls and its `ring` provider: loading the
//! key, certificates and client CAs when the server is built (before anything listens, so a
//! broken file stops the start with one message naming it), the handshake of each connection
//! (bounded by the deadline of the transport's own handshake), and the client certificate's
//! details for the session (`transport.peer_cert`, the `tls` authentication method).
//!
//! `ring` rather than `aws-lc-rs` (rustls' default): ring builds with the C compiler alone and
//! quickly, while aws-lc-rs compiles the much larger AWS-LC C library (and some of its versions
//! and targets need cmake, which the project's machines do not have); rustls offers the same
//! suites with both.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{CipherSuite, RootCertStore, ServerConfig, SupportedProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use turnstile_config::{TlsConfig, TlsSuite};
use turnstile_core::peer::PeerCert;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Why an endpoint's TLS settings cannot be used. Each names the configuration key and the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("endpoint.tls.{key}: cannot read {}: {source}", path.display())]
    Read {
        /// The configuration key (`key`, `chain_certificates[1]`, ...).
        key: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file is not valid PEM, or holds no item of the kind the key needs.
    #[error("endpoint.tls.{key}: {}: {problem}", path.display())]
    Pem {
        /// The configuration key.
        key: String,
        /// The file.
        path: PathBuf,
        /// What is wrong (names the PEM block expected).
        problem: String,
    },
    /// The private key is not one rustls can sign with.
    #[error("endpoint.tls.key: {}: unusable private key: {source}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// rustls' reason.
        source: rustls::Error,
    },
    /// The server certificate is not a valid X.509 certificate.
    #[error("endpoint.tls.certificate: {}: invalid certificate: {source}", path.display())]
    Certificate {
        /// The certificate file.
        path: PathBuf,
        /// rustls' reason.
        source: rustls::Error,
    },
    /// The private key is not the certificate's.
    #[error(
        "endpoint.tls.key: the private key in {} does not match the certificate in {} \
         (endpoint.tls.certificate): it belongs to another certificate",
        key.display(),
        certificate.display()
    )]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        certificate: PathBuf,
    },
    /// A CA certificate cannot be used to verify clients.
    #[error("endpoint.tls.ca_certificates: {problem}")]
    ClientCas {
        /// What is wrong.
        problem: String,
    },
    /// rustls refused the combination (e.g. of cipher suites and protocol versions).
    #[error("endpoint.tls: {0}")]
    Config(rustls::Error),
}

/// A TLS endpoint's server side, ready to accept connections.
#[derive(Clone)]
pub(crate) struct ServerTls {
    acceptor: TlsAcceptor,
    /// Whether clients must present a certificate (`ca_certificates` given).
    client_certificates: bool,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("client_certificates", &self.client_certificates)
            .finish_non_exhaustive()
    }
}

/// What a session learns of its TLS connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct Secured {
    /// The client's certificate (verified against the endpoint's CAs), if it sent one.
    pub peer_cert: Option<Arc<PeerCert>>,
}

impl ServerTls {
    /// Reads the files of `config` and builds the server configuration; `http`: the endpoint
    /// serves HTTP (web, websocket), which it announces in ALPN.
    pub(crate) fn load(config: &TlsConfig, http: bool) -> Result<ServerTls, TlsError> {
        let provider = Arc::new(provider(config));
        let key = read_key(&config.key)?;
        let mut chain = read_certs("certificate", &config.certificate)?;
        for (i, path) in config.chain_certificates.iter().enumerate() {
            chain.extend(read_certs(&format!("chain_certificates[{i}]"), path)?);
        }
        let signing_key = provider
            .key_provider
            .load_private_key(key)
            .map_err(|source| TlsError::Key {
                path: config.key.clone(),
                source,
            })?;
        let certified = CertifiedKey::new(chain, signing_key);
        match certified.keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(rustls::Error::InconsistentKeys(_)) => {
                return Err(TlsError::KeyMismatch {
                    key: config.key.clone(),
                    certificate: config.certificate.clone(),
                })
            }
            Err(source) => {
                return Err(TlsError::Certificate {
                    path: config.certificate.clone(),
                    source,
                })
            }
        }

        let versions = protocol_versions(&provider);
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(TlsError::Config)?;
        let builder = if config.client_certificates() {
            let mut roots = RootCertStore::empty();
            for (i, path) in config.ca_certificates.iter().enumerate() {
                let key = format!("ca_certificates[{i}]");
                for cert in read_certs(&key, path)? {
                    roots.add(cert).map_err(|e| TlsError::ClientCas {
                        problem: format!("{}: not a usable CA certificate: {e}", path.display()),
                    })?;
                }
            }
            // As Crossbar (Twisted's verify=True): a client without a certificate is refused.
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::ClientCas {
                    problem: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut server = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
        if http {
            // HTTP/1.1 only (WebSocket upgrades need it): a client offering h2 and http/1.1
            // gets http/1.1. RawSocket endpoints announce nothing, so a RawSocket client that
            // offers some protocol in ALPN is not refused for it.
            server.alpn_protocols = vec![b"http/1.1".to_vec()];
        }
        Ok(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            client_certificates: config.client_certificates(),
        })
    }

    /// Runs the server side of the TLS handshake on `io`, until `deadline`. The error is for the
    /// debug log: a client that does not speak TLS (or cannot agree) is closed, nothing more.
    pub(crate) async fn accept<S>(
        &self,
        io: S,
        deadline: tokio::time::Instant,
    ) -> Result<(TlsStream<S>, Secured), String>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let stream = match tokio::time::timeout_at(deadline, self.acceptor.accept(io)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(format!("TLS handshake failed: {e}")),
            Err(_) => return Err("TLS handshake not completed in time".into()),
        };
        let peer_cert = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|der| peer_cert(der.as_ref()))
            .map(Arc::new);
        Ok((stream, Secured { peer_cert }))
    }
}

/// The `ring` provider with the suites `ciphers` selects (all, without it).
fn provider(config: &TlsConfig) -> CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(ciphers) = &config.ciphers {
        let wanted: Vec<CipherSuite> = ciphers.suites.iter().map(|s| rustls_suite(*s)).collect();
        provider
            .cipher_suites
            .retain(|s| wanted.contains(&s.suite()));
    }
    provider
}

/// TLS 1.3 and 1.2, less a version none of whose suites is selected.
fn protocol_versions(provider: &CryptoProvider) -> Vec<&'static SupportedProtocolVersion> {
    let has =
        |v: &SupportedProtocolVersion| provider.cipher_suites.iter().any(|s| s.version() == v);
    let mut versions = Vec::new();
    if has(&rustls::version::TLS13) {
        versions.push(&rustls::version::TLS13);
    }
    if has(&rustls::version::TLS12) {
        versions.push(&rustls::version::TLS12);
    }
    versions
}

fn rustls_suite(suite: TlsSuite) -> CipherSuite {
    match suite {
        TlsSuite::Tls13Aes256GcmSha384 => CipherSuite::TLS13_AES_256_GCM_SHA384,
        TlsSuite::Tls13Aes128GcmSha256 => CipherSuite::TLS13_AES_128_GCM_SHA256,
        TlsSuite::Tls13Chacha20Poly1305Sha256 => CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
        TlsSuite::EcdheEcdsaAes256GcmSha384 => CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        TlsSuite::EcdheEcdsaAes128GcmSha256 => CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        TlsSuite::EcdheEcdsaChacha20Poly1305 => {
            CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        TlsSuite::EcdheRsaAes256GcmSha384 => CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        TlsSuite::EcdheRsaAes128GcmSha256 => CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        TlsSuite::EcdheRsaChacha20Poly1305 => {
            CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
    }
}

fn read(key: &str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        key: key.to_owned(),
        path: path.to_owned(),
        source,
    })
}

/// The private key in `path` (PKCS#8, PKCS#1 or SEC1, PEM).
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read("key", path)?;
    let text = String::from_utf8_lossy(&pem);
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || text.contains("Proc-Type: 4,ENCRYPTED")
    {
        // There is no passphrase setting (nor in Crossbar): say so rather than "no key found".
        return Err(TlsError::Pem {
            key: "key".into(),
            path: path.to_owned(),
            problem: "the private key is encrypted with a passphrase, which cannot be given: \
                      store it unencrypted (e.g. `openssl pkey -in KEY -out KEY.plain`)"
                .into(),
        });
    }
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Pem {
        key: "key".into(),
        path: path.to_owned(),
        problem: match e {
            pem::Error::NoItemsFound => "no private key found (expected a PEM block \"PRIVATE \
                                         KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\")"
                .into(),
            e => format!("invalid PEM: {e}"),
        },
    })
}

/// The certificates in `path` (PEM), at least one.
fn read_certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(key, path)?;
    let problem = |problem: String| TlsError::Pem {
        key: key.to_owned(),
        path: path.to_owned(),
        problem,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| problem(format!("invalid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(problem(
            "no certificate found (expected a PEM block \"CERTIFICATE\")".into(),
        ));
    }
    Ok(certs)
}

/// The details of a client certificate (already verified by rustls), as Crossbar gives them;
/// `None` if x509-parser cannot read what webpki accepted.
pub(crate) fn peer_cert(der: &[u8]) -> Option<PeerCert> {
    use md5::Digest as _;
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let validity = cert.validity();
    let names = |name: &x509_parser::x509::X509Name| -> BTreeMap<String, String> {
        name.iter_attributes()
            .filter_map(|attr| {
                let value = attr.as_str().ok()?;
                Some((
                    attribute_name(&attr.attr_type().to_id_string()),
                    value.to_owned(),
                ))
            })
            .collect()
    };
    Some(PeerCert {
        sha1: fingerprint(
            ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref(),
        ),
        sha256: fingerprint(ring::digest::digest(&ring::digest::SHA256, der).as_ref()),
        md5: fingerprint(&md5::Md5::digest(der)),
        subject: names(cert.subject()),
        issuer: names(cert.issuer()),
        serial: cert.tbs_certificate.serial.to_string(),
        not_before: utc_time(validity.not_before.timestamp()),
        not_after: utc_time(validity.not_after.timestamp()),
        expired: x509_parser::time::ASN1Time::now() > validity.not_after,
        version: cert.version().0,
        signature_algorithm: signature_name(&cert.signature_algorithm.algorithm.to_id_string()),
    })
}

/// `AB:CD:...`: upper-case hex pairs joined by colons.
fn fingerprint(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{b:02X}");
    }
    out
}

/// OpenSSL's short name of a name attribute, lower case (as Crossbar gives it), or the OID.
fn attribute_name(oid: &str) -> String {
    let name = match oid {
        "2.5.4.3" => "cn",
        "2.5.4.6" => "c",
        "2.5.4.7" => "l",
        "2.5.4.8" => "st",
        "2.5.4.9" => "street",
        "2.5.4.10" => "o",
        "2.5.4.11" => "ou",
        "2.5.4.5" => "serialnumber",
        "0.9.2342.19200300.100.1.25" => "dc",
        "0.9.2342.19200300.100.1.1" => "uid",
        "1.2.840.113549.1.9.1" => "emailaddress",
        other => other,
    };
    name.to_owned()
}

/// The signature algorithm's name as Crossbar (Python's cryptography) gives it, or the OID.
fn signature_name(oid: &str) -> String {
    let name = match oid {
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "RSASSA-PSS",
        "1.3.101.112" => "ed25519",
        other => other,
    };
    name.to_owned()
}

/// `YYYYMMDDhhmmssZ` of a Unix time (the format Crossbar gives `not_before` / `not_after` in).
fn utc_time(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_are_formatted_as_crossbar_does() {
        assert_eq!(utc_time(0), "19700101000000Z");
        assert_eq!(utc_time(951_782_400), "20000229000000Z");
        assert_eq!(utc_time(1_798_761_599), "20261231235959Z");
    }

    #[test]
    fn fingerprints_are_upper_case_hex_pairs() {
        assert_eq!(fingerprint(&[0xab, 0x01, 0xff]), "AB:01:FF");
    }
}
