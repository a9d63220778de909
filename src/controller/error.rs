//! What can go wrong in a reconcile, and the condition reason each failure shows.

use mux::{ErrorKind, MuxError};

/// What kind of Mux source was not found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Asset,
    LiveStream,
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SourceKind::Asset => "asset",
            SourceKind::LiveStream => "live stream",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Mux(#[from] MuxError),
    #[error(
        "Secret {0} not found: create it with the keys tokenId and tokenSecret (a Mux access token)"
    )]
    CredentialsMissing(String),
    #[error("Secret {secret} has no usable key {key}: it needs tokenId and tokenSecret")]
    CredentialsInvalid { secret: String, key: &'static str },
    #[error("Mux has no {what} {id} in the environment of this token")]
    SourceNotFound { what: SourceKind, id: String },
    #[error(
        "Secret {0} exists and was not created by this MasterExport: the operator never takes over a Secret it did not create. Set spec.urlSecret.name to a free name (or remove that Secret if it is a leftover)"
    )]
    UrlSecretNotOurs(String),
    #[error("the resource has no namespace")]
    NoNamespace,
    #[error(
        "the published URL expired while the reconcile waited for Mux (its rate limit is saturated); it is withdrawn, and a fresh one follows"
    )]
    ExpiredWhileWaiting,
    #[error("finalizer: {0}")]
    Finalizer(String),
}

impl Error {
    /// A condition reason, and whether a person must act (Stalled) or time will tell.
    pub fn reason(&self) -> (&'static str, bool) {
        match self {
            Error::Kube(_) => ("KubernetesApiError", false),
            Error::Mux(e) if e.kind() == ErrorKind::Credentials => ("MuxCredentialsRejected", true),
            Error::Mux(e) if e.kind() == ErrorKind::BadRequest => (e.reason(), true),
            Error::Mux(e) if e.kind() == ErrorKind::NotFound => ("NotFound", true),
            Error::Mux(e) => (e.reason(), false),
            Error::CredentialsMissing(_) => ("CredentialsSecretNotFound", true),
            Error::CredentialsInvalid { .. } => ("CredentialsSecretInvalid", true),
            Error::SourceNotFound {
                what: SourceKind::Asset,
                ..
            } => ("AssetNotFound", true),
            Error::SourceNotFound {
                what: SourceKind::LiveStream,
                ..
            } => ("LiveStreamNotFound", true),
            Error::ExpiredWhileWaiting => ("MuxRateLimited", false),
            Error::UrlSecretNotOurs(_) => ("UrlSecretNotOurs", true),
            Error::NoNamespace | Error::Finalizer(_) => ("InternalError", false),
        }
    }

    /// How long Mux asked us to wait, when it said.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::Mux(MuxError::RateLimited {
                retry_after: Some(after),
                ..
            }) => Some(*after),
            _ => None,
        }
    }

    /// A Mux error of `kind` on source `id` becomes "not found" of that source.
    pub fn from_mux_on(what: SourceKind, id: &str) -> impl FnOnce(MuxError) -> Error + '_ {
        move |e| match e.kind() {
            ErrorKind::NotFound => Error::SourceNotFound {
                what,
                id: id.to_string(),
            },
            _ => Error::Mux(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::context::TOKEN_ID_KEY;

    #[test]
    fn every_error_maps_to_a_reason_and_whether_a_person_must_act() {
        let cases: Vec<(Error, &str, bool)> = vec![
            (
                Error::CredentialsMissing("media/mux".into()),
                "CredentialsSecretNotFound",
                true,
            ),
            (
                Error::CredentialsInvalid {
                    secret: "media/mux".into(),
                    key: TOKEN_ID_KEY,
                },
                "CredentialsSecretInvalid",
                true,
            ),
            (
                Error::Mux(MuxError::Credentials {
                    status: 401,
                    message: "no".into(),
                    request_id: "r".into(),
                }),
                "MuxCredentialsRejected",
                true,
            ),
            (
                Error::SourceNotFound {
                    what: SourceKind::Asset,
                    id: "a".into(),
                },
                "AssetNotFound",
                true,
            ),
            (
                Error::SourceNotFound {
                    what: SourceKind::LiveStream,
                    id: "l".into(),
                },
                "LiveStreamNotFound",
                true,
            ),
            (
                Error::Mux(MuxError::BadRequest {
                    status: 400,
                    kind: "invalid_parameters".into(),
                    message: "m".into(),
                    request_id: "r".into(),
                }),
                "MuxRejectedRequest",
                true,
            ),
            (
                Error::Mux(MuxError::RateLimited {
                    attempts: 21,
                    retry_after: None,
                }),
                "MuxRateLimited",
                false,
            ),
            (
                Error::Mux(MuxError::Unavailable {
                    message: "503".into(),
                    attempts: 5,
                }),
                "MuxUnavailable",
                false,
            ),
            (
                Error::UrlSecretNotOurs("media/mux".into()),
                "UrlSecretNotOurs",
                true,
            ),
            (
                Error::Mux(MuxError::Decode {
                    message: "eof".into(),
                    request_id: "r".into(),
                }),
                "MuxBadResponse",
                false,
            ),
        ];
        for (error, reason, stalled) in cases {
            assert_eq!(error.reason(), (reason, stalled), "{error}");
        }
    }

    #[test]
    fn error_messages_say_what_to_do() {
        let missing = Error::CredentialsMissing("media/mux".into()).to_string();
        assert!(
            missing.contains("tokenId") && missing.contains("media/mux"),
            "{missing}"
        );
        let stream = Error::SourceNotFound {
            what: SourceKind::LiveStream,
            id: "ls1".into(),
        }
        .to_string();
        assert_eq!(
            stream,
            "Mux has no live stream ls1 in the environment of this token"
        );
    }
}
