//! Throwaway certificates for TLS test servers, made with `rcgen`: a CA, a server certificate
//! for `127.0.0.1` and `localhost` signed by it, a client certificate signed by it (mutual TLS),
//! and a second, unrelated CA (what a client configured with the wrong CA trusts).
//!
//! Owns certificate generation only; the server process is [`crate::RedisServer`]'s.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// PEM texts of one test PKI. Every field is PEM (`-----BEGIN ...`).
#[derive(Clone)]
pub struct TestCertificates {
    /// The CA that signed the server and client certificates.
    pub ca_pem: String,
    /// The server's certificate (SANs `127.0.0.1`, `localhost`).
    pub server_cert_pem: String,
    /// The server's private key.
    pub server_key_pem: String,
    /// A client certificate signed by the CA (for `--tls-auth-clients yes`).
    pub client_cert_pem: String,
    /// The client certificate's private key.
    pub client_key_pem: String,
    /// Another CA, which signed nothing the server presents.
    pub other_ca_pem: String,
}

impl std::fmt::Debug for TestCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCertificates").finish_non_exhaustive()
    }
}

impl TestCertificates {
    /// Generates a fresh PKI (ECDSA P-256 keys). Panics if `rcgen` fails, which it does not
    /// for these fixed parameters.
    pub fn generate() -> TestCertificates {
        let ca = ca("tiercache test CA");
        let (server_cert_pem, server_key_pem) = leaf(
            &ca,
            "tiercache test server",
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert_pem, client_key_pem) = leaf(
            &ca,
            "tiercache test client",
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        TestCertificates {
            ca_pem: ca.pem(),
            server_cert_pem,
            server_key_pem,
            client_cert_pem,
            client_key_pem,
            other_ca_pem: ca_pem_only("an unrelated CA"),
        }
    }
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().expect("a CA key");
    CertifiedIssuer::self_signed(params, key).expect("a self-signed CA")
}

fn ca_pem_only(name: &str) -> String {
    ca(name).pem()
}

/// A certificate and its key, signed by `ca`.
fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    name: &str,
    sans: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
    let mut params = CertificateParams::new(sans).expect("certificate parameters");
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("a key");
    let cert = params.signed_by(&key, ca).expect("a signed certificate");
    (cert.pem(), key.serialize_pem())
}
