//! Client certificates for mutual TLS, one HTTP client per certificate.
//!
//! An endpoint names a certificate (`outbox.endpoints.client_certificate`); its files live in
//! `OUTBOXD_CLIENT_CERT_DIR`, never in the database, in either layout:
//!
//! * `<dir>/<name>/tls.crt` and `<dir>/<name>/tls.key`: a Kubernetes Secret of type
//!   `kubernetes.io/tls` mounted per name (a directory named like the certificate wins);
//! * `<dir>/<name>.crt` and `<dir>/<name>.key`: a flat directory, e.g. a projected volume of
//!   several Secrets (what the Helm chart mounts).
//!
//! The certificate file may carry its chain after it; the key is PEM (PKCS#8, PKCS#1 or SEC1).
//! Names are confined to that directory ([`valid_name`]: no `/`, no `..`).
//!
//! Each certificate gets its own [`reqwest::Client`] (a client presents one certificate), built
//! like the shared one and cached. Kubernetes updates a mounted Secret in place (an atomic
//! symlink swap): the files' modification times and sizes are looked at again at most every
//! [`RECHECK`], and a change builds a new client (requests of the old one finish as they are),
//! so rotating the Secret needs no restart. A certificate that cannot be loaded fails the
//! attempt with kind `tls` and a message naming the file; the delivery is retried like any
//! other failure, so fixing the Secret is enough. Each new reason is logged once as a warning.
//!
//! What `/metrics` shows of each certificate ([`Identities::expiry`]): whether it can be
//! used now and, when it can, its leaf's `notAfter`, read when the files are loaded, so an
//! expiry can be alerted on before the receiver starts refusing the handshake.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use super::ClientBase;

/// How often the files of a loaded certificate are looked at again.
pub(crate) const RECHECK: Duration = Duration::from_secs(5);

/// The longest certificate name (a DNS label-ish file name; Kubernetes Secret names are at
/// most 253 characters).
const MAX_NAME: usize = 253;

/// Why a client certificate cannot be used. Every message names the certificate and, when
/// it is about a file, the file; never what the files contain.
#[derive(Debug, thiserror::Error)]
pub enum ClientCertError {
    #[error(
        "the endpoint presents client certificate {name:?}, but OUTBOXD_CLIENT_CERT_DIR is not set"
    )]
    NoDirectory { name: String },
    #[error(
        "{name:?} is not a valid client certificate name (1-253 letters, digits, '.', '_', '-', starting with a letter or digit; no '/' or '..')"
    )]
    InvalidName { name: String },
    #[error("client certificate {name:?}: cannot read {}: {source}", path.display())]
    Read {
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "client certificate {name:?}: {} and {} are not a PEM certificate and its private key: {reason}",
        cert.display(),
        key.display()
    )]
    Invalid {
        name: String,
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("client certificate {name:?}: cannot build its HTTP client: {reason}")]
    Client { name: String, reason: String },
}

/// A certificate name: what the column's CHECK (`outbox.endpoints_client_certificate_valid`)
/// and the admin API accept.
pub fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.len() <= MAX_NAME
        && !name.contains("..")
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The files of one certificate (modification time and size; `None` for a missing file).
type Stamp = [Option<(SystemTime, u64)>; 2];

struct Loaded {
    client: reqwest::Client,
    /// The leaf certificate's `notAfter`, in Unix seconds.
    not_after: i64,
    stamp: Stamp,
    checked: Instant,
}

#[derive(Default)]
struct State {
    loaded: HashMap<String, Loaded>,
    /// The last error of each certificate that failed, to log each new reason once.
    failing: HashMap<String, String>,
}

/// The clients of the certificates endpoints name.
pub(crate) struct Identities {
    dir: Option<PathBuf>,
    base: ClientBase,
    recheck: Duration,
    state: Mutex<State>,
}

impl Identities {
    pub(crate) fn new(dir: Option<PathBuf>, base: ClientBase) -> Identities {
        Identities {
            dir,
            base,
            recheck: RECHECK,
            state: Mutex::new(State::default()),
        }
    }

    /// The client presenting certificate `name`, (re)built if its files are new or changed.
    pub(crate) fn client(&self, name: &str) -> Result<reqwest::Client, ClientCertError> {
        self.loaded(name).map(|(client, _)| client)
    }

    /// When certificate `name` expires (its leaf's `notAfter`, Unix seconds), or why it cannot
    /// be used now. Looks at the files like [`Identities::client`] (at most every
    /// [`RECHECK`] for a loaded certificate, at once for a failing one).
    pub(crate) fn expiry(&self, name: &str) -> Result<i64, ClientCertError> {
        self.loaded(name).map(|(_, not_after)| not_after)
    }

    /// The client and the `notAfter` of certificate `name`; each new reason it cannot be used
    /// is logged once.
    fn loaded(&self, name: &str) -> Result<(reqwest::Client, i64), ClientCertError> {
        let result = self.load(name);
        let mut state = self.lock();
        match &result {
            Ok(_) => {
                if state.failing.remove(name).is_some() {
                    tracing::info!(certificate = name, "client certificate usable again");
                }
            }
            Err(e) => {
                let message = e.to_string();
                if state.failing.get(name) != Some(&message) {
                    tracing::warn!(certificate = name, error = %message,
                        "client certificate unusable: deliveries of the endpoints that present it fail with kind tls until it is fixed");
                    state.failing.insert(name.to_owned(), message);
                }
            }
        }
        result
    }

    fn load(&self, name: &str) -> Result<(reqwest::Client, i64), ClientCertError> {
        let Some(dir) = &self.dir else {
            return Err(ClientCertError::NoDirectory {
                name: name.to_owned(),
            });
        };
        if !valid_name(name) {
            return Err(ClientCertError::InvalidName {
                name: name.to_owned(),
            });
        }
        let now = Instant::now();
        if let Some(l) = self.lock().loaded.get(name)
            && now.duration_since(l.checked) < self.recheck
        {
            return Ok((l.client.clone(), l.not_after));
        }
        let files = Files::of(dir, name);
        let stamp = files.stamp();
        if let Some(l) = self.lock().loaded.get_mut(name)
            && l.stamp == stamp
        {
            l.checked = now;
            return Ok((l.client.clone(), l.not_after));
        }
        let (client, not_after) = match self.build(name, &files) {
            Ok(c) => c,
            Err(e) => {
                // Not cached: the next attempt reads the files again.
                self.lock().loaded.remove(name);
                return Err(e);
            }
        };
        let replaced = self
            .lock()
            .loaded
            .insert(
                name.to_owned(),
                Loaded {
                    client: client.clone(),
                    not_after,
                    stamp,
                    checked: now,
                },
            )
            .is_some();
        tracing::info!(
            certificate = name,
            cert = %files.cert.display(),
            reloaded = replaced,
            "client certificate loaded"
        );
        Ok((client, not_after))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The client presenting the files' certificate, and that certificate's `notAfter`.
    fn build(&self, name: &str, files: &Files) -> Result<(reqwest::Client, i64), ClientCertError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| ClientCertError::Read {
                name: name.to_owned(),
                path: path.to_owned(),
                source,
            })
        };
        let mut pem = read(&files.cert)?;
        pem.push(b'\n');
        pem.extend_from_slice(&read(&files.key)?);
        let invalid = |reason: String| ClientCertError::Invalid {
            name: name.to_owned(),
            cert: files.cert.clone(),
            key: files.key.clone(),
            reason,
        };
        if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(invalid("no -----BEGIN CERTIFICATE----- block".into()));
        }
        let identity =
            reqwest::Identity::from_pem(&pem).map_err(|e| invalid(super::error_text(&e)))?;
        let not_after = not_after(&pem).map_err(invalid)?;
        let client = self
            .base
            .builder()
            .identity(identity)
            .build()
            .map_err(|e| ClientCertError::Client {
                name: name.to_owned(),
                reason: super::error_text(&e),
            })?;
        Ok((client, not_after))
    }
}

/// The `notAfter` (Unix seconds) of the first certificate in `pem`: the leaf, the one
/// presented (a chain follows it).
fn not_after(pem: &[u8]) -> Result<i64, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::pem_slice_iter(pem)
        .next()
        .ok_or("no -----BEGIN CERTIFICATE----- block")?
        .map_err(|e| format!("the certificate's PEM cannot be read: {e}"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| format!("the certificate is not X.509: {e}"))?;
    Ok(cert.validity().not_after.timestamp())
}

/// The files of one certificate.
struct Files {
    cert: PathBuf,
    key: PathBuf,
}

impl Files {
    /// `<dir>/<name>/tls.{crt,key}` when `<dir>/<name>` is a directory, else
    /// `<dir>/<name>.{crt,key}`.
    fn of(dir: &Path, name: &str) -> Files {
        let nested = dir.join(name);
        if nested.is_dir() {
            Files {
                cert: nested.join("tls.crt"),
                key: nested.join("tls.key"),
            }
        } else {
            Files {
                cert: dir.join(format!("{name}.crt")),
                key: dir.join(format!("{name}.key")),
            }
        }
    }

    fn stamp(&self) -> Stamp {
        [&self.cert, &self.key].map(|p| {
            let m = std::fs::metadata(p).ok()?;
            Some((m.modified().ok()?, m.len()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::http::{Sender, SenderConfig};

    #[test]
    fn names_stay_inside_the_directory() {
        for ok in ["acme", "acme-mtls", "a.b_c", "0", &"x".repeat(253)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "..",
            ".hidden",
            "a/b",
            "../etc",
            "a..b",
            "a b",
            "-x",
            "é",
            &"x".repeat(254),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    fn identities(dir: Option<PathBuf>) -> Identities {
        let sender = Sender::new(SenderConfig::default()).unwrap();
        let mut ids = Identities::new(dir, sender.inner.identities.base.clone());
        ids.recheck = Duration::ZERO;
        ids
    }

    #[test]
    fn a_certificate_is_loaded_from_either_layout_and_reloaded_when_its_files_change() {
        let certs = testkit::tls::Certs::new();
        let (cert, key) = certs.client();
        let dir = tempfile::tempdir().unwrap();
        // Flat: acme.crt + acme.key.
        std::fs::copy(&cert, dir.path().join("acme.crt")).unwrap();
        std::fs::copy(&key, dir.path().join("acme.key")).unwrap();
        // Nested (a TLS Secret mounted per name): globex/tls.crt + globex/tls.key.
        std::fs::create_dir(dir.path().join("globex")).unwrap();
        std::fs::copy(&cert, dir.path().join("globex/tls.crt")).unwrap();
        std::fs::copy(&key, dir.path().join("globex/tls.key")).unwrap();
        let ids = identities(Some(dir.path().to_owned()));
        ids.client("acme").unwrap();
        ids.client("globex").unwrap();

        // A broken file: the error names it, and the next attempt reads the files again.
        std::fs::write(dir.path().join("acme.crt"), "not a certificate").unwrap();
        let e = ids.client("acme").unwrap_err().to_string();
        assert!(
            e.contains("acme.crt") && e.contains("not a PEM certificate"),
            "{e}"
        );
        std::fs::remove_file(dir.path().join("acme.key")).unwrap();
        std::fs::copy(&cert, dir.path().join("acme.crt")).unwrap();
        let e = ids.client("acme").unwrap_err().to_string();
        assert!(e.contains("cannot read") && e.contains("acme.key"), "{e}");
        std::fs::copy(&key, dir.path().join("acme.key")).unwrap();
        ids.client("acme").unwrap();

        let e = ids.client("nobody").unwrap_err().to_string();
        assert!(e.contains("nobody.crt"), "{e}");
        let e = ids.client("../etc").unwrap_err().to_string();
        assert!(e.contains("not a valid client certificate name"), "{e}");
        let e = identities(None).client("acme").unwrap_err().to_string();
        assert!(e.contains("OUTBOXD_CLIENT_CERT_DIR is not set"), "{e}");
    }

    #[test]
    fn the_expiry_is_the_certificates_not_after_and_a_broken_file_has_none() {
        let certs = testkit::tls::Certs::new();
        let (cert, key) = certs.client();
        let dir = tempfile::tempdir().unwrap();
        // A chain after the leaf, as mounted Secrets often carry.
        let chain = [&cert, &certs.ca()]
            .map(|p| std::fs::read_to_string(p).unwrap())
            .concat();
        std::fs::write(dir.path().join("acme.crt"), chain).unwrap();
        std::fs::copy(&key, dir.path().join("acme.key")).unwrap();
        std::fs::copy(&key, dir.path().join("broken.key")).unwrap();
        std::fs::write(dir.path().join("broken.crt"), "not a certificate").unwrap();
        let ids = identities(Some(dir.path().to_owned()));

        let expected = testkit::tls::not_after(&cert);
        assert_eq!(ids.expiry("acme").unwrap(), expected);
        let e = ids.expiry("broken").unwrap_err().to_string();
        assert!(e.contains("broken.crt"), "{e}");
        // A PEM block that is not a certificate: refused before any handshake.
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        std::fs::write(dir.path().join("broken.crt"), garbage).unwrap();
        assert!(ids.expiry("broken").is_err());
        // Fixed files are read again at once.
        std::fs::copy(&cert, dir.path().join("broken.crt")).unwrap();
        assert_eq!(ids.expiry("broken").unwrap(), expected);
    }
}
