//! Upstream adapters, one folder per wire format. An adapter builds an HTTP request *value*,
//! classifies error responses and translates answers; no adapter does I/O.

pub mod mock;
pub mod openai;

use crate::api::ChatRequest;
use crate::config::{Deployment, ProviderKind, RoutingTable};
use crate::resilience::{ErrorClass, UpstreamError};

/// An outbound HTTP POST, as a value. The transport sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Looks up Worker secrets by name.
pub trait Secrets {
    fn get(&self, name: &str) -> Option<String>;
}

/// Where an attempt goes: over the network, or to the built-in mock.
#[derive(Debug, Clone)]
pub enum Target {
    Http(HttpRequest),
    Mock(mock::MockPlan),
}

/// Builds the upstream call for one deployment.
pub fn build_target(
    table: &RoutingTable,
    deployment: &Deployment,
    req: &ChatRequest,
    secrets: &dyn Secrets,
) -> Result<Target, UpstreamError> {
    let provider = table.provider_of(deployment).ok_or_else(|| {
        UpstreamError::new(
            ErrorClass::NotFound,
            "deployment refers to a missing provider",
        )
    })?;
    match &provider.kind {
        ProviderKind::OpenAi(p) => {
            openai::build_request(p, deployment, req, secrets).map(Target::Http)
        }
        ProviderKind::Mock(m) => Ok(Target::Mock(mock::plan(m, deployment, req))),
    }
}
