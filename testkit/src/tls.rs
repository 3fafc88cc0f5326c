//! TLS fixtures: a throwaway certificate authority made with the `openssl` command line, a
//! server certificate and a client certificate signed by it, and a PostgreSQL cluster of its
//! own that accepts TLS connections only.
//!
//! The server certificate names `localhost` and `127.0.0.1`; a test that connects to another
//! name (`postgres://…@db.example:<port>/…?hostaddr=127.0.0.1`) sees `verify-full` refuse it.
//! The client certificate's common name is [`CERT_USER`], the one role that must log in with
//! it (`hostssl … cert`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use outboxd::embedded_pg::{EmbeddedPostgres, Options};

/// The role that logs in with the client certificate (and only with it).
pub const CERT_USER: &str = "outboxd_cert_user";

/// A certificate authority and what it signed, as PEM files in a temporary directory.
pub struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    /// Makes the CA, the server certificate (for `localhost`, `127.0.0.1`) and the client
    /// certificate (for [`CERT_USER`]). Panics with openssl's output on failure.
    pub fn new() -> Certs {
        let dir = tempfile::Builder::new()
            .prefix("outboxd-tls.")
            .tempdir()
            .expect("TLS temp dir");
        // The server (the postgres OS user) reads its certificate and key from here.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let d = dir.path();
        openssl(
            d,
            &format!("req -x509 {NEW_KEY} -keyout ca.key -out ca.pem -days 2"),
            &[
                "-subj",
                "/CN=outboxd test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        sign(
            d,
            "server",
            "localhost",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        );
        sign(d, "client", CERT_USER, "extendedKeyUsage=clientAuth\n");
        for f in ["server.pem", "ca.pem", "client.pem"] {
            fs::set_permissions(d.join(f), fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        // PostgreSQL wants its key owned by its user, readable by nobody else.
        let key = d.join("server.key");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod");
        if let Some((uid, gid)) = crate::pgbouncer::server_user() {
            std::os::unix::fs::chown(&key, Some(uid), Some(gid)).expect("chown server.key");
        }
        Certs { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The CA certificate (for `sslrootcert`).
    pub fn ca(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// The server certificate (for `localhost` and `127.0.0.1`) and its key.
    pub fn server(&self) -> (PathBuf, PathBuf) {
        (self.path("server.pem"), self.path("server.key"))
    }

    /// The client certificate and key (for `sslcert`, `sslkey`).
    pub fn client(&self) -> (PathBuf, PathBuf) {
        (self.path("client.pem"), self.path("client.key"))
    }

    /// A PostgreSQL cluster of its own that accepts TLS only: plaintext connections over TCP
    /// are refused (`hostnossl … reject`), [`CERT_USER`] must present the client
    /// certificate, everyone else is trusted once encrypted.
    pub fn postgres(&self) -> EmbeddedPostgres {
        let s = |k: &str, v: PathBuf| (k.to_owned(), v.display().to_string());
        let mut pg = EmbeddedPostgres::start(Options {
            settings: vec![
                ("ssl".into(), "on".into()),
                s("ssl_cert_file", self.path("server.pem")),
                s("ssl_key_file", self.path("server.key")),
                s("ssl_ca_file", self.ca()),
            ],
            ..Options::default()
        })
        .expect("TLS PostgreSQL");
        let hba = format!(
            "local all all trust\n\
             hostnossl all all 0.0.0.0/0 reject\n\
             hostnossl all all ::/0 reject\n\
             hostssl all {CERT_USER} 127.0.0.1/32 cert\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostssl all all ::1/128 trust\n"
        );
        fs::write(pg.data_dir().join("pg_hba.conf"), hba).expect("pg_hba.conf");
        // A restart, not a reload: once it returns, every new connection sees the new rules.
        pg.restart(false).expect("restart with the new pg_hba.conf");
        pg
    }
}

/// A PEM certificate's `notAfter` in Unix seconds, as `openssl x509 -enddate` reads it (an
/// X.509 implementation other than the one under test).
pub fn not_after(cert: &Path) -> i64 {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-enddate", "-dateopt", "iso_8601", "-in"])
        .arg(cert)
        .output()
        .unwrap_or_else(|e| panic!("running openssl (apt-get install openssl): {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let date = text.trim().trim_start_matches("notAfter=");
    chrono::NaiveDateTime::parse_from_str(date, "%Y-%m-%d %H:%M:%SZ")
        .unwrap_or_else(|e| panic!("openssl x509 -enddate said {text:?}: {e}"))
        .and_utc()
        .timestamp()
}

impl Default for Certs {
    fn default() -> Self {
        Certs::new()
    }
}

/// `<name>.key` and `<name>.pem` for `cn`, signed by the CA, with the extensions given.
fn sign(dir: &Path, name: &str, cn: &str, extensions: &str) {
    let ext = format!("{name}.ext");
    fs::write(
        dir.join(&ext),
        format!("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n{extensions}"),
    )
    .expect("extensions file");
    let (key, csr, pem) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    openssl(
        dir,
        &format!("req {NEW_KEY} -keyout {key} -out {csr}"),
        &["-subj", &format!("/CN={cn}")],
    );
    openssl(
        dir,
        &format!(
            "x509 -req -in {csr} -CA ca.pem -CAkey ca.key -CAcreateserial -out {pem} -days 2 \
             -extfile {ext}"
        ),
        &[],
    );
}

/// openssl's arguments for a new, unencrypted P-256 key.
const NEW_KEY: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";

/// `openssl <words> <args>` in `dir`: `words` split at whitespace, `args` (which may hold
/// spaces) as they are.
fn openssl(dir: &Path, words: &str, args: &[&str]) {
    let out = Command::new("openssl")
        .args(words.split_whitespace())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running openssl (apt-get install openssl): {e}"));
    assert!(
        out.status.success(),
        "openssl {words} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
