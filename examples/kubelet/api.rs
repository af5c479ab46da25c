//! API calls: each with a timeout; status patches retried with a bounded backoff.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::Value;

use crate::Ctx;

/// The timeout of one API call (watches have their own).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("timed out after {}s", CALL_TIMEOUT.as_secs())]
    Timeout,
    #[error("{}", text(.0))]
    Kube(kube::Error),
}

/// A kube error in one line: the API's message, or the error chain.
fn text(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} {}: {}", s.code, s.reason, s.message),
        other => {
            let mut t = other.to_string();
            let mut src = std::error::Error::source(other);
            while let Some(s) = src {
                t.push_str(": ");
                t.push_str(&s.to_string());
                src = s.source();
            }
            t
        }
    }
}

impl CallError {
    /// The HTTP status the API answered with, if it answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            CallError::Kube(kube::Error::Api(s)) => Some(s.code),
            _ => None,
        }
    }

    /// Worth trying again: no answer, a conflict, throttling or a server error.
    pub fn transient(&self) -> bool {
        match self.code() {
            None => true,
            Some(c) => c == 409 || c == 429 || c >= 500,
        }
    }
}

/// `f` with [`CALL_TIMEOUT`].
pub async fn call<T>(f: impl Future<Output = Result<T, kube::Error>>) -> Result<T, CallError> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Err(_) => Err(CallError::Timeout),
        Ok(r) => r.map_err(CallError::Kube),
    }
}

/// Up to 6 tries of a transient failure, 0.5 s doubling.
pub async fn retry<T, F, Fut>(what: &str, mut f: F) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut delay = Duration::from_millis(500);
    let mut tries = 1;
    loop {
        match call(f()).await {
            Ok(t) => return Ok(t),
            Err(e) if e.transient() && tries < 6 => {
                log!("{what}: {e} (try {tries}, again in {}ms)", delay.as_millis());
                tokio::time::sleep(delay).await;
                delay = delay.saturating_mul(2);
                tries += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Patches `pods/<name>/status` (strategic merge, as the kubelet does), retried. False when it
/// did not take (logged), or the kubelet is stopping.
pub async fn patch_pod_status(ctx: &Ctx, ns: &str, name: &str, status: Value) -> bool {
    if ctx.stopping() {
        return false;
    }
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let patch = Patch::Strategic(serde_json::json!({ "status": status }));
    let pp = PatchParams::default();
    let what = format!("{ns}/{name}: status");
    match retry(&what, || api.patch_status(name, &pp, &patch)).await {
        Ok(_) => true,
        Err(e) => {
            log!("{what} not written: {e}");
            false
        }
    }
}

/// Deletes a pod with `gracePeriodSeconds=0` (its uid as precondition), as the kubelet confirms
/// a graceful deletion once its containers are gone.
pub async fn confirm_delete(ctx: &Ctx, ns: &str, name: &str, uid: &str) {
    if ctx.stopping() {
        return;
    }
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let what = format!("{ns}/{name}: delete");
    match retry(&what, || api.delete(name, &dp)).await {
        Ok(_) => log!("{ns}/{name}: deleted"),
        Err(e) if e.code() == Some(404) => {}
        Err(e) => log!("{what}: {e}"),
    }
}
