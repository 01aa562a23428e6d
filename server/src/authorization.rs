//! The tenant check in front of the inner router: the first thing that happens to a
//! decrypted request, before its body is parsed.
//!
//! The token is read from the inner request's `authorization` field, which exists only
//! inside the encryption: the gateway builds the inner request from the decrypted Binary
//! HTTP message alone, so an outer `Authorization` header never reaches this point and never
//! authorizes anything. The decision itself is [`Directory::authorize`]; this module maps it
//! to inner statuses (401 with `WWW-Authenticate: Bearer`, 403, 429 with `Retry-After`) and
//! hands the [`Grant`] to the routes (to filter `GET /v2/models`) and back to the gateway (to
//! log the tenant's name). A streamed request (NDJSON) is checked again for each line with
//! [`Reauthorize`], the same decision and the same answers.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sealgate_server::tenants::{Denial, Directory, Grant};
use zeroize::Zeroizing;

use crate::inference::InnerError;

/// The challenge of a request without a token (RFC 6750 section 3).
const CHALLENGE: &str = "Bearer realm=\"sealgate\"";

/// The challenge of a request with a token that is malformed, unknown, rotated out or
/// removed (RFC 6750 section 3.1).
const INVALID_TOKEN: &str = "Bearer realm=\"sealgate\", error=\"invalid_token\"";

/// Axum middleware: authorizes the request or answers for it.
pub async fn authorize(State(tenants): State<Arc<Directory>>, mut request: Request, next: Next) -> Response {
    let model = model_in(request.uri().path());
    let field = request.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes());
    match tenants.authorize(field, model.as_deref()) {
        Ok(grant) => {
            let field = field.map(|f| Arc::new(Zeroizing::new(f.to_vec())));
            request.extensions_mut().insert(Reauthorize { tenants: tenants.clone(), field });
            request.extensions_mut().insert(grant.clone());
            let mut response = next.run(request).await;
            response.extensions_mut().insert(grant);
            response
        }
        Err(denial) => refusal(denial, model.as_deref()).into_response(),
    }
}

/// The check of one request, to run again for each line of a stream: the directory and the
/// request's `authorization` field (zeroized when the last copy goes).
#[derive(Clone)]
pub struct Reauthorize {
    tenants: Arc<Directory>,
    field: Option<Arc<Zeroizing<Vec<u8>>>>,
}

impl Reauthorize {
    /// Decides once more for `model` (taking from the tenant's rate, like a request); the
    /// refusal is the inner error a request would get.
    pub fn again(&self, model: &str) -> Result<(), InnerError> {
        match self.tenants.authorize(self.field.as_ref().map(|f| f.as_slice()), Some(model)) {
            Ok(_) => Ok(()),
            Err(denial) => Err(refusal(denial, Some(model))),
        }
    }
}

/// The tenant a response was served to, if it got past the check.
pub fn tenant_of(response: &Response) -> Option<&str> {
    response.extensions().get::<Grant>().map(Grant::tenant)
}

fn refusal(denial: Denial, model: Option<&str>) -> InnerError {
    match denial {
        Denial::MissingToken => InnerError::new(
            StatusCode::UNAUTHORIZED,
            "this gateway needs a bearer token: send `authorization: Bearer sg_...` inside the encrypted request",
        )
        .challenge(CHALLENGE),
        Denial::MalformedToken => {
            InnerError::new(StatusCode::UNAUTHORIZED, "the bearer token is malformed").challenge(INVALID_TOKEN)
        }
        Denial::UnknownToken => {
            InnerError::new(StatusCode::UNAUTHORIZED, "the bearer token is not valid (unknown, rotated out or removed)")
                .challenge(INVALID_TOKEN)
        }
        Denial::ModelNotAllowed => InnerError::new(
            StatusCode::FORBIDDEN,
            format!("this token may not use model '{}'", sealgate_models::tensor::echo(model.unwrap_or("-"))),
        ),
        Denial::RateLimited { retry_after } => {
            InnerError::new(StatusCode::TOO_MANY_REQUESTS, "this token is over its request rate; slow down")
                .retry_after(retry_after)
        }
    }
}

/// The model an inner path names (`/v2/models/{name}` and everything below it), decoded as
/// the router's `Path` extractor decodes it, so the name checked is the name served.
fn model_in(path: &str) -> Option<std::borrow::Cow<'_, str>> {
    let rest = path.strip_prefix("/v2/models/")?;
    let segment = rest.split('/').next().filter(|s| !s.is_empty())?;
    // A segment that does not decode to UTF-8 is refused by the router too; checking the
    // raw text keeps the allowlist decision on the safe side (no name matches it).
    Some(percent_encoding::percent_decode_str(segment).decode_utf8().unwrap_or(std::borrow::Cow::Borrowed(segment)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_is_read_from_the_path_as_the_router_reads_it() {
        assert_eq!(model_in("/v2/models/credit-risk/infer").as_deref(), Some("credit-risk"));
        assert_eq!(model_in("/v2/models/credit-risk").as_deref(), Some("credit-risk"));
        assert_eq!(model_in("/v2/models/credit-risk/versions/1/infer").as_deref(), Some("credit-risk"));
        assert_eq!(model_in("/v2/models/cr%65dit-risk/infer").as_deref(), Some("credit-risk"));
        assert_eq!(model_in("/v2/models"), None);
        assert_eq!(model_in("/v2/models/"), None);
        assert_eq!(model_in("/v2/health/ready"), None);
    }
}
