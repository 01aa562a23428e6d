//! The tenants step of `serve`: who may call, and keeping that current while serving.
//!
//! The tenant directory is read from `DATA_DIR/tenants.json`; on the embedded default's first
//! start a tenant `dev` is created and its token written to `DATA_DIR/dev.token`. While the
//! gateway runs, [`watch_tenants`] replaces the directory when the file changes.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use sealgate_models::audit::{AuditLog, Event};
use sealgate_server::tenants::{Directory, ModelAllowlist, Store, TenantSpec};

use super::ServeArgs;
use crate::commands::tenants::unix_now;
use crate::data_dir::{DataDir, write_file};

/// The tenants a running gateway knows, the file they come from and the embedded default's
/// token file (printed at start-up when it exists).
pub(super) struct Tenants {
    pub store: Store,
    pub directory: Arc<Directory>,
    pub dev_token: Option<PathBuf>,
}

/// Loads the tenant directory (creating `dev` on the embedded default's first start) and
/// warns when requests will be served without a token, or refused for want of tenants.
pub(super) fn tenant_directory(args: &ServeArgs, data: &DataDir, log: &AuditLog) -> Result<Tenants> {
    let store = Store::new(data.root());
    let dev_token = if args.models.is_none() { ensure_dev_tenant(data, &store, log)? } else { None };
    let directory = Arc::new(Directory::from_tenants(store.load()?, args.danger_allow_anonymous));
    if args.danger_allow_anonymous {
        tracing::warn!(
            "--danger-allow-anonymous: requests WITHOUT a bearer token are served and may call every model; \
             development only"
        );
    } else if directory.is_empty() {
        tracing::warn!(
            path = %store.path().display(),
            "there are no tenants: every request is refused with 401 until `sealgate tenants add` creates one"
        );
    }
    Ok(Tenants { store, directory, dev_token })
}

/// The embedded default's tenant: on first start (no tenant file yet) a tenant `dev`
/// allowed every model (`--models '*'`: the demo models, and any the developer adds), its
/// token written to `DATA_DIR/dev.token` (0600) for the examples, `sealgate-load
/// --token-file` and the demo page. Returns that file when it exists.
fn ensure_dev_tenant(data: &DataDir, store: &Store, log: &AuditLog) -> Result<Option<PathBuf>> {
    let path = data.root().join("dev.token");
    if !store.exists() {
        let spec = TenantSpec::new("dev", ModelAllowlist::All, None, None)?;
        let created = store.add_if_missing(spec, unix_now());
        let event = Event {
            op: "tenant-add",
            provider: "tenants",
            key_id: "dev",
            artifact: None,
            result: created.as_ref().map(|_| ()).map_err(|e| format!("{e:#}")),
        };
        log.record(&event)?;
        if let Some(token) = created? {
            let mut line = zeroize::Zeroizing::new(token.expose().to_owned());
            line.push('\n');
            write_file(&path, line.as_bytes(), 0o600)?;
            tracing::info!(path = %path.display(), "created the development tenant 'dev'");
        }
    }
    Ok(path.is_file().then_some(path))
}

/// Picks up tenant changes without a restart: the file is checked every second (its size,
/// modification time and inode), and at once on SIGHUP. A file that fails to parse is
/// logged and the previous tenants stay in force.
pub(super) async fn watch_tenants(store: Store, tenants: Arc<Directory>) {
    let path = store.path().to_path_buf();
    crate::watch::on_change(vec![path], |trigger| match store.load() {
        Ok(records) => {
            tenants.replace(records);
            let signal = trigger == crate::watch::Trigger::Signal;
            tracing::info!(tenants = tenants.len(), signal, "reloaded the tenant file");
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "the tenant file could not be read; keeping the tenants loaded before")
        }
    })
    .await
}
