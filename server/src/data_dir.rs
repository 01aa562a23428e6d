//! The gateway's data directory and the embedded development defaults.
//!
//! `sealgate serve` with no arguments must work on a fresh machine, so the first start
//! creates what a production deployment would bring itself: a development CA and a server
//! certificate for localhost (`tls/`), and HPKE key pairs, one X25519 and one X-Wing (`keys/`),
//! whose private keys (for X-Wing the 32-byte seed) are stored only wrapped by the KMS (bound
//! to the context `purpose=ohttp-key`, `key_id`, `kem`).
//! Which keys are active, retiring or retired is recorded beside them in `keys/keys.json`
//! (see `commands/keys.rs`); this file only writes and reads one key file at a time.
//! Later starts reuse them, so clients that trusted the CA or pinned the key configuration
//! keep working, and replicas that share the KMS share the keys. Private files are created
//! with mode 0600 inside 0700 directories.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};
use sealgate_models::artifact::KmsSet;
use sealgate_models::kms::{DataKey, EncryptionContext, KmsProvider, WrappedKey};
use sealgate_protocol::{GatewayKey, Kem, SymmetricSuite};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The folders of a data directory that hold keys: the local KMS keyring, the HPKE key
/// files, the TLS key.
const KEY_FOLDERS: [&str; 3] = ["kms", "keys", "tls"];

/// Paths inside a data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
    /// It had no entries when opened: this process is creating it.
    new: bool,
}

impl DataDir {
    /// Opens (creating if needed) the directory. Refuses it, and each key folder in it
    /// (`kms/`, `keys/`, `tls/`), when another user owns it or group or others can write to
    /// it: whoever can write there can swap the keys.
    pub fn open(root: &Path) -> Result<Self> {
        create_private_dir(root)?;
        check_private_dir(root)?;
        for folder in KEY_FOLDERS {
            let path = root.join(folder);
            if path.exists() {
                check_private_dir(&path)?;
            }
        }
        // An empty data dir has had no key use to audit, so its audit log (and the key that
        // authenticates it) start with this process (`Providers::open`); in any other, a missing
        // log or key is one that was deleted (`sealgate audit verify` says so).
        let new = fs::read_dir(root).with_context(|| format!("listing {}", root.display()))?.next().is_none();
        Ok(Self { root: root.to_path_buf(), new })
    }

    /// True when the folder had no entries when it was opened: this process is creating it,
    /// so it gets a new audit key and log.
    pub fn is_new(&self) -> bool {
        self.new
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The development CA certificate clients trust.
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("tls/ca.pem")
    }

    /// The server certificate chain.
    pub fn server_cert(&self) -> PathBuf {
        self.root.join("tls/server.pem")
    }

    /// The server's TLS private key.
    pub fn server_key(&self) -> PathBuf {
        self.root.join("tls/server.key")
    }

    /// Sealed models of the embedded default.
    pub fn models_dir(&self) -> PathBuf {
        self.root.join("models")
    }

    /// An empty folder, read-only (0555), that ONNX Runtime is told to resolve external
    /// data against: a model reference the gateway's scan missed then finds no file, rather
    /// than one next to the gateway. Created (or emptied of nothing: a non-empty one stops
    /// start-up) on first use.
    pub fn empty_external_data_dir(&self) -> Result<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.root.join("no-external-data");
        if !dir.is_dir() {
            fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o555))
            .with_context(|| format!("making {} read-only", dir.display()))?;
        let mut entries = fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?;
        if let Some(entry) = entries.next() {
            bail!(
                "{} must stay empty (ONNX Runtime is pointed at it so that no model can read files) but holds {}",
                dir.display(),
                entry?.file_name().to_string_lossy()
            );
        }
        Ok(dir)
    }

    /// The record of published model versions and their digests.
    pub fn published_models(&self) -> PathBuf {
        self.root.join("published-models.json")
    }

    /// Creates the development CA and server certificate unless they exist.
    /// Returns true when it created them.
    pub fn ensure_dev_tls(&self) -> Result<bool> {
        let (ca, cert, key) = (self.ca_cert(), self.server_cert(), self.server_key());
        match (ca.exists(), cert.exists(), key.exists()) {
            (true, true, true) => return Ok(false),
            (false, false, false) => {}
            _ => bail!(
                "{} holds only part of the development TLS files (ca.pem, server.pem, server.key); \
                 remove the folder to regenerate them or supply all three",
                self.root.join("tls").display()
            ),
        }
        create_private_dir(&self.root.join("tls"))?;

        let ca_key = KeyPair::generate().context("generating the CA key")?;
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = DistinguishedName::new();
        ca_params.distinguished_name.push(DnType::CommonName, "Sealgate development CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).context("signing the CA certificate")?;
        let issuer = rcgen::Issuer::new(ca_params, &ca_key);

        let server_key = KeyPair::generate().context("generating the server key")?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, "localhost");
        params.subject_alt_names = vec![
            SanType::DnsName("localhost".try_into().context("SAN")?),
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ];
        let server_cert = params.signed_by(&server_key, &issuer).context("signing the server certificate")?;

        write_file(&ca, ca_cert.pem().as_bytes(), 0o644)?;
        write_file(&cert, format!("{}{}", server_cert.pem(), ca_cert.pem()).as_bytes(), 0o644)?;
        write_file(&key, Zeroizing::new(server_key.serialize_pem()).as_bytes(), 0o600)?;
        // The CA key is not kept: nothing else is ever signed with it, and a development CA
        // whose key is gone cannot be abused to mint certificates for other names.
        Ok(true)
    }

    /// Generates an HPKE key pair for `kem` with identifier `key_id` and stores it as
    /// `keys/ohttp-NNN.key`, the private key wrapped by `wrap_with`. Which keys exist and in
    /// which state is the key list's business (`commands/keys.rs`), not this file's.
    pub fn create_ohttp_key(&self, key_id: u8, kem: Kem, wrap_with: (&dyn KmsProvider, &str)) -> Result<GatewayKey> {
        create_private_dir(&self.ohttp_keys_dir())?;
        let key = GatewayKey::generate(
            key_id,
            kem,
            SymmetricSuite::ALL.to_vec(),
            &mut rand_core::UnwrapErr(getrandom::SysRng),
        )
        .with_context(|| format!("generating the {} HPKE key", kem.name()))?;
        write_ohttp_key(&self.ohttp_key_file(key_id), &key, wrap_with)?;
        Ok(key)
    }

    /// Reads the key file of `key_id`, unwrapping it with whichever of `kms` wrapped it.
    pub fn read_ohttp_key(&self, key_id: u8, kms: &dyn KmsSet) -> Result<GatewayKey> {
        read_ohttp_key(&self.ohttp_key_file(key_id), kms)
    }

    /// Writes the bytes of a key file (from an imported bundle, already checked) for
    /// `key_id`, replacing any.
    pub fn write_ohttp_key_file(&self, key_id: u8, bytes: &[u8]) -> Result<()> {
        create_private_dir(&self.ohttp_keys_dir())?;
        write_file(&self.ohttp_key_file(key_id), bytes, 0o600)
    }

    /// The identifiers of the key files present (`keys/ohttp-NNN.key`), for data dirs made
    /// before the key list existed.
    pub fn ohttp_key_files(&self) -> Result<Vec<u8>> {
        let dir = self.ohttp_keys_dir();
        create_private_dir(&dir)?;
        let mut ids: Vec<u8> = fs::read_dir(&dir)
            .with_context(|| format!("listing {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "key"))
            .filter_map(|p| p.file_stem()?.to_str()?.strip_prefix("ohttp-")?.parse().ok())
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// The key file of `key_id`.
    pub fn ohttp_key_file(&self, key_id: u8) -> PathBuf {
        self.ohttp_keys_dir().join(format!("ohttp-{key_id:03}.key"))
    }

    /// The folder of the HPKE key files and the key list.
    pub fn ohttp_keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }
}

/// The at-rest form of an HPKE key: public parameters in the clear, the private key only
/// as a KMS-wrapped blob.
#[derive(Serialize, Deserialize)]
struct StoredKey {
    key_id: u8,
    kem: u16,
    suites: Vec<(u16, u16)>,
    wrapped: StoredWrapped,
}

#[derive(Serialize, Deserialize)]
struct StoredWrapped {
    provider: String,
    key_id: String,
    ciphertext_hex: String,
}

fn ohttp_key_context(key_id: u8, kem: u16) -> EncryptionContext {
    [
        ("purpose".to_string(), "ohttp-key".to_string()),
        ("key_id".to_string(), key_id.to_string()),
        ("kem".to_string(), kem.to_string()),
    ]
    .into()
}

fn write_ohttp_key(path: &Path, key: &GatewayKey, (kms, kms_key): (&dyn KmsProvider, &str)) -> Result<()> {
    let config = key.config();
    let secret = DataKey::from_slice(&key.secret_bytes()).context("HPKE private key size")?;
    let wrapped = kms
        .wrap_data_key(kms_key, &secret, &ohttp_key_context(config.key_id(), config.kem().id()))
        .context("wrapping the HPKE private key with the KMS")?;
    let stored = StoredKey {
        key_id: config.key_id(),
        kem: config.kem().id(),
        suites: config.suites().iter().map(|s| (s.kdf.id(), s.aead.id())).collect(),
        wrapped: StoredWrapped {
            provider: wrapped.provider,
            key_id: wrapped.key_id,
            ciphertext_hex: hex::encode(&wrapped.ciphertext),
        },
    };
    write_file(path, &serde_json::to_vec_pretty(&stored)?, 0o600)
}

fn read_ohttp_key(path: &Path, kms: &dyn KmsSet) -> Result<GatewayKey> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    unwrap_ohttp_key(&bytes, &path.display(), kms)
}

/// Unwraps the HPKE key in the bytes of a key file (`what` names them in errors: a path, or
/// a key of an imported bundle).
pub fn unwrap_ohttp_key(bytes: &[u8], what: &dyn std::fmt::Display, kms: &dyn KmsSet) -> Result<GatewayKey> {
    let stored: StoredKey = serde_json::from_slice(bytes).map_err(|_| {
        anyhow::anyhow!("{what} is not a KMS-sealed HPKE key file (plaintext key files are not accepted)")
    })?;
    let kem = Kem::from_id(stored.kem).with_context(|| what.to_string())?;
    let suites = stored
        .suites
        .iter()
        .map(|&(kdf, aead)| {
            Ok(SymmetricSuite::new(sealgate_protocol::Kdf::from_id(kdf)?, sealgate_protocol::Aead::from_id(aead)?))
        })
        .collect::<Result<Vec<_>, sealgate_protocol::Error>>()
        .with_context(|| what.to_string())?;
    let wrapped = WrappedKey {
        provider: stored.wrapped.provider.clone(),
        key_id: stored.wrapped.key_id.clone(),
        ciphertext: hex::decode(&stored.wrapped.ciphertext_hex)
            .map_err(|_| anyhow::anyhow!("{}: wrapped key is not hex", what))?,
    };
    let provider = kms.provider(&wrapped.provider).ok_or_else(|| {
        anyhow::anyhow!("{}: sealed with KMS provider '{}', which is not configured", what, wrapped.provider)
    })?;
    let secret = provider
        .decrypt_data_key(&wrapped, &ohttp_key_context(stored.key_id, stored.kem))
        .with_context(|| format!("unwrapping the HPKE key ({what})"))?;
    GatewayKey::from_secret_bytes(stored.key_id, kem, suites, secret.expose()).with_context(|| what.to_string())
}

pub use sealgate_server::files::{check_private_dir, create_private_dir, write_file};
