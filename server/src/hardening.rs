//! Process hardening, the first thing every `sealgate` command does.
//!
//! The gateway holds unwrapped HPKE private keys and decrypted model weights in memory, and
//! the CLI handles data keys and tenant tokens, so a core file or another process of the
//! same user reading this one's memory would leak them. [`harden_process`] therefore makes
//! the process non-dumpable (`PR_SET_DUMPABLE` 0: no core file, no `ptrace` attach and no
//! `/proc/PID/mem`, `environ` or `maps` for anyone without `CAP_SYS_PTRACE`; the kernel then
//! shows the process's `/proc/PID/` files as owned by root) and sets both core-file limits
//! to 0 (`RLIMIT_CORE`, shown in `/proc/PID/limits`), so a core is not written even if
//! something made the process dumpable again. Both calls go through rustix, without
//! `unsafe` here.

use anyhow::{Context, Result};
use rustix::process::{DumpableBehavior, Resource, Rlimit, dumpable_behavior, set_dumpable_behavior, setrlimit};

/// Makes this process non-dumpable and sets its core-file limit (soft and hard) to 0.
///
/// Both are refusals to start when they fail: a gateway that cannot keep its keys out of a
/// core file should not run with them. The dumpable flag is read back from the kernel.
pub fn harden_process() -> Result<()> {
    set_dumpable_behavior(DumpableBehavior::NotDumpable).context("prctl(PR_SET_DUMPABLE, 0)")?;
    // The hard limit too, so nothing later in the process can raise the soft one again.
    setrlimit(Resource::Core, Rlimit { current: Some(0), maximum: Some(0) }).context("setrlimit(RLIMIT_CORE, 0)")?;
    let now = dumpable_behavior().context("prctl(PR_GET_DUMPABLE)")?;
    anyhow::ensure!(
        now == DumpableBehavior::NotDumpable,
        "the process is still dumpable after prctl(PR_SET_DUMPABLE, 0)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_ends_up_non_dumpable_without_core_files() {
        harden_process().unwrap();
        assert_eq!(dumpable_behavior().unwrap(), DumpableBehavior::NotDumpable);
        let core = rustix::process::getrlimit(Resource::Core);
        assert_eq!((core.current, core.maximum), (Some(0), Some(0)));
    }
}
