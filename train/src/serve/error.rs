//! [`ServeError`]: every way a request can fail, with its HTTP status; answered as
//! `{"error": "…"}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::query::QueryImageError;
use patchmix_export::index::GalleryError;

/// An error of the retrieval service. Client errors are 4xx and name the problem; only a
/// failing encoder, a failing disk or a bug give a 5xx.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The request is malformed (bad JSON, bad base64, a bad query parameter, a bad vector,
    /// a bad `k`, an unknown label).
    #[error("{0}")]
    BadRequest(String),
    /// An image that cannot be used (not an image, truncated, corrupt); `what` names it.
    #[error("{what}: {source}")]
    Image {
        /// Which image (`the body`, `images[3]`).
        what: String,
        /// Why.
        #[source]
        source: QueryImageError,
    },
    /// The body is larger than `--max-body-bytes`.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// No such endpoint.
    #[error("{0}")]
    NotFound(String),
    /// The endpoint exists, with another method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The content type is not one the endpoint takes.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// An id to add is already in the gallery.
    #[error("{0}")]
    Conflict(String),
    /// The batching queue is full: the server is overloaded; retry later.
    #[error("the server is busy (the request queue is full); retry after {retry_after_s} s")]
    QueueFull {
        /// Seconds the client should wait (sent as `Retry-After`).
        retry_after_s: u64,
    },
    /// The server is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The request took longer than `--request-timeout-ms`.
    #[error("the request took longer than {0} ms")]
    Timeout(u64),
    /// The encoder failed, the gallery could not be written, or a bug.
    #[error("{0}")]
    Internal(String),
    /// The server cannot start: a bad setting, an address that cannot be bound.
    #[error("{0}")]
    Startup(String),
}

impl ServeError {
    /// The HTTP status of this error.
    ///
    /// # Examples
    ///
    /// ```
    /// use axum::http::StatusCode;
    /// use patchmix_train::serve::ServeError;
    /// assert_eq!(ServeError::BadRequest("k = 0".into()).status(), StatusCode::BAD_REQUEST);
    /// assert_eq!(
    ///     ServeError::QueueFull { retry_after_s: 1 }.status(),
    ///     StatusCode::SERVICE_UNAVAILABLE
    /// );
    /// ```
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Image { source, .. } => match source {
                QueryImageError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::BAD_REQUEST,
            },
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::QueueFull { .. } | Self::ShuttingDown | Self::Timeout(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) | Self::Startup(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A gallery error of a request (search or add): the client's fault except for I/O.
    pub(crate) fn from_gallery(e: GalleryError) -> Self {
        match e {
            GalleryError::DuplicateId(_) => Self::Conflict(e.to_string()),
            GalleryError::InvalidK { .. }
            | GalleryError::UnknownLabel { .. }
            | GalleryError::InvalidQuery(_)
            | GalleryError::InvalidItems(_)
            | GalleryError::Knn(_) => Self::BadRequest(e.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

/// The JSON body of every error.
#[derive(serde::Serialize)]
struct ErrorBody {
    error: String,
}

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        if matches!(self, Self::Internal(_)) {
            log::error!("{self}");
        }
        let status = self.status();
        let retry = match self {
            Self::QueueFull { retry_after_s } => Some(retry_after_s),
            Self::ShuttingDown | Self::Timeout(_) => Some(1),
            _ => None,
        };
        let mut response = (
            status,
            Json(ErrorBody {
                error: self.to_string(),
            }),
        )
            .into_response();
        if let Some(s) = retry {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}
