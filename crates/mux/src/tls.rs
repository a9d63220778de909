//! One rustls crypto provider for the whole process.
//!
//! kube, reqwest and object_store all speak TLS through rustls; if more than one provider
//! is compiled in, rustls refuses to pick one. We install aws-lc-rs (the one object_store
//! requires anyway) once, before any client is built.

/// Installs the process-wide rustls provider. Safe to call any number of times.
pub fn install_crypto_provider() {
    // `install_default` fails only when a provider is already installed: that is fine.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
