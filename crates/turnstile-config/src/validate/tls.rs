//! `endpoint.tls` of a TCP endpoint, with Crossbar's keys (`key`, `certificate`,
//! `chain_certificates`, `ca_certificates`, `ciphers`, `dhparam`), and the check that a
//! transport offering `auth.tls` can see client certificates. The files themselves are read when
//! the router starts (before anything listens): here their paths are resolved against the
//! configuration's directory, which is Crossbar's node directory.

use std::path::{Path, PathBuf};

use crate::ciphers::{CipherStringError, TlsCiphers};
use crate::cursor::{Keys, Node, VResult};
use crate::load::resolve;
use crate::model::{AuthConfig, Endpoint, TlsConfig};

const TLS: Keys = Keys {
    what: "TLS settings of an endpoint",
    allowed: &[
        "key",
        "certificate",
        "chain_certificates",
        "ca_certificates",
        "ciphers",
        "dhparam",
    ],
    unsupported: &[],
};

/// `tls` of a TCP endpoint.
pub(super) fn tls(node: &Node, base_dir: &Path) -> VResult<TlsConfig> {
    let obj = node.object(&TLS)?;
    let file = |n: &Node, what: &str| -> VResult<PathBuf> {
        Ok(resolve(base_dir, n.non_empty_str(what)?))
    };
    let key = file(
        &obj.required("key", "the server's private key file (PEM)")?,
        "a file path (the private key, PEM)",
    )?;
    let certificate = file(
        &obj.required("certificate", "the server's certificate file (PEM)")?,
        "a file path (the certificate, PEM)",
    )?;
    let files = |n: &Node, what: &str| -> VResult<Vec<PathBuf>> {
        n.list(what)?
            .iter()
            .map(|item| file(item, "a file path (PEM)"))
            .collect()
    };
    let chain_certificates = obj.opt("chain_certificates", Vec::new(), |n| {
        files(n, "a list of certificate files (PEM)")
    })?;
    let ca_certificates = obj.opt("ca_certificates", Vec::new(), |n| {
        let cas = files(n, "a list of CA certificate files (PEM)")?;
        if cas.is_empty() {
            // Crossbar would turn verification on with no CA to verify against, refusing every
            // client; refused here rather than listening for nobody.
            return Err(n.invalid(
                "at least one CA certificate file (clients must present a certificate issued by \
                 one of them); leave the key out to not ask for client certificates",
            ));
        }
        Ok(cas)
    })?;
    let ciphers = obj.opt("ciphers", None, |n| {
        let text = n.str("an OpenSSL cipher string")?;
        TlsCiphers::parse(text).map(Some).map_err(|e| match e {
            CipherStringError::Empty => n.invalid("an OpenSSL cipher string"),
            CipherStringError::NothingSelected => n.unsupported(e.to_string()),
        })
    })?;
    let dhparam = obj.opt("dhparam", None, |n| {
        file(n, "a file path (Diffie-Hellman parameters, PEM)").map(Some)
    })?;
    Ok(TlsConfig {
        key,
        certificate,
        chain_certificates,
        ca_certificates,
        ciphers,
        dhparam,
    })
}

/// Refuses `auth.tls` (at `auth_node`) on an endpoint that does not ask clients for
/// certificates: no session could ever authenticate with it.
pub(super) fn check_tls_auth(
    auth: Option<&AuthConfig>,
    auth_node: Option<Node>,
    endpoint: &Endpoint,
) -> VResult<()> {
    let (Some(auth), Some(auth_node)) = (auth, auth_node) else {
        return Ok(());
    };
    if auth.tls.is_none() {
        return Ok(());
    }
    let asks =
        matches!(endpoint, Endpoint::Tcp { tls: Some(tls), .. } if tls.client_certificates());
    if asks {
        return Ok(());
    }
    let at = auth_node.get("tls").unwrap_or(auth_node);
    Err(at.conflict(
        "TLS client certificate authentication needs a TLS endpoint with \
         \"ca_certificates\" (endpoint.tls.ca_certificates), so that clients are asked for a \
         certificate",
    ))
}
