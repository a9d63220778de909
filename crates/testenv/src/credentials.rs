//! The control plane's secrets: the admin's token and the ServiceAccount signing key pair.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::error::{Error, Result};

/// Files the apiserver reads at start.
#[derive(Debug)]
pub(crate) struct Credentials {
    /// A random bearer token for user `admin` in group `system:masters`.
    pub(crate) admin_token: String,
    /// The apiserver's `--token-auth-file`, naming that token.
    pub(crate) token_file: PathBuf,
    /// Signs ServiceAccount tokens (`--service-account-signing-key-file`).
    pub(crate) service_account_private_key: PathBuf,
    /// Verifies them (`--service-account-key-file`).
    pub(crate) service_account_public_key: PathBuf,
}

impl Credentials {
    /// Generates fresh credentials into `dir`.
    pub(crate) fn generate(dir: &Path) -> Result<Self> {
        let admin_token = uuid::Uuid::new_v4().simple().to_string();
        let token_file = dir.join("tokens.csv");
        // token,user,uid,"group,..." (the apiserver's static token file format)
        std::fs::write(
            &token_file,
            format!("{admin_token},admin,admin,\"system:masters\"\n"),
        )
        .map_err(Error::io(format!("writing {}", token_file.display())))?;

        // An ECDSA P-256 key: quick to generate, and both apiserver flags accept its PEM forms.
        let service_account_private_key = dir.join("service-account.key");
        let service_account_public_key = dir.join("service-account.pub");
        openssl(
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
            ],
            &service_account_private_key,
        )?;
        let mut public = vec!["ec", "-pubout", "-in"];
        let private = service_account_private_key.to_string_lossy();
        public.push(&private);
        public.push("-out");
        openssl(&public, &service_account_public_key)?;

        Ok(Credentials {
            admin_token,
            token_file,
            service_account_private_key,
            service_account_public_key,
        })
    }
}

/// Runs `openssl ARGS OUT`.
fn openssl(args: &[&str], out: &Path) -> Result<()> {
    let output = Command::new("openssl")
        .args(args)
        .arg(out)
        .output()
        .map_err(Error::io(
            "running openssl to make the ServiceAccount signing key",
        ))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "openssl {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )))
    }
}
