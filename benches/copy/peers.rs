//! The peers' command lines: `rclone copyurl` into the same MinIO, `aria2c -x8 -s8` to a file.

use std::path::Path;
use std::process::Command;

use testenv::Minio;

/// `rclone copyurl URL bench:<bucket>/<key>`, the remote defined by variables. A clean
/// environment: no AWS_* variable of the caller's (AWS_CA_BUNDLE makes this rclone refuse to
/// start), no rclone.conf (`home` is an empty folder).
pub fn rclone_copyurl(rclone: &str, url: &str, minio: &Minio, key: &str, home: &Path) -> Command {
    let mut command = Command::new(rclone);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .args(["copyurl", url, &format!("bench:{}/{key}", minio.bucket())])
        .env("RCLONE_CONFIG_BENCH_TYPE", "s3")
        .env("RCLONE_CONFIG_BENCH_PROVIDER", "Minio")
        .env("RCLONE_CONFIG_BENCH_ENDPOINT", minio.endpoint())
        .env("RCLONE_CONFIG_BENCH_ACCESS_KEY_ID", minio.access_key())
        .env("RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY", minio.secret_key())
        .env("RCLONE_CONFIG_BENCH_REGION", "us-east-1");
    command
}

/// `aria2c -x8 -s8` downloading `url` to `dir/master.mp4` (8 connections, 8 segments), quiet.
pub fn aria2c(aria2c: &str, url: &str, dir: &Path) -> Command {
    let mut command = Command::new(aria2c);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .args(["-x8", "-s8", "--quiet=true", "--allow-overwrite=true"])
        .arg("--dir")
        .arg(dir)
        .args(["--out", "master.mp4", url]);
    command
}
