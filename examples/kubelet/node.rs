//! Nodes: registration (create or adopt), status through `nodes/<n>/status`, and the Lease in
//! `kube-node-lease` renewed every 10 s (the status every minute).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::Ctx;
use crate::api::{call, retry};

pub const KUBELET_VERSION: &str = "v1.37.2";
/// What every node offers the scheduler.
pub const CPU: &str = "64";
pub const MEMORY: &str = "256Gi";
pub const PODS: &str = "250";
const LEASE_SECONDS: i64 = 40;
const LEASE_NAMESPACE: &str = "kube-node-lease";

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn now_micro() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Registers node `name`, then keeps it alive until the task is aborted.
pub async fn keep(ctx: Arc<Ctx>, name: String, index: usize) {
    // spread the nodes' heartbeats over the period
    tokio::time::sleep(Duration::from_millis(u64::try_from(index % 100).unwrap_or(0) * 50)).await;
    let mut delay = Duration::from_secs(1);
    let uid = loop {
        match register(&ctx, &name).await {
            Ok(uid) => break uid,
            Err(e) => {
                log!(
                    "node {name}: registration failed: {e:#} (again in {}s)",
                    delay.as_secs()
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    };
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        if let Err(e) = renew_lease(&ctx, &name, &uid).await {
            log!("node {name}: lease not renewed: {e:#}");
        }
        if n % 6 == 5
            && let Err(e) = set_status(&ctx, &name, false).await
        {
            log!("node {name}: status not written: {e:#}");
        }
        n += 1;
    }
}

fn labels(name: &str) -> Value {
    json!({
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
    })
}

/// Creates the Node or adopts the one of that name; sets its status and Lease. Its uid.
async fn register(ctx: &Ctx, name: &str) -> anyhow::Result<String> {
    let api: Api<Node> = Api::all(ctx.client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels(name),
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
    }))?;
    let created = match call(api.create(&PostParams::default(), &node)).await {
        Ok(n) => {
            log!("node {name}: created");
            n
        }
        Err(e) if e.code() == Some(409) => {
            let patch = json!({"metadata": {"labels": labels(name)}});
            let n = call(api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))).await?;
            log!("node {name}: adopted");
            n
        }
        Err(e) => return Err(e.into()),
    };
    let uid = created.metadata.uid.unwrap_or_default();
    set_status(ctx, name, true).await?;
    renew_lease(ctx, name, &uid).await?;
    Ok(uid)
}

/// Ready and the other conditions false; addresses, capacity and nodeInfo. `transition`
/// sets the conditions' lastTransitionTime too (at registration).
async fn set_status(ctx: &Ctx, name: &str, transition: bool) -> anyhow::Result<()> {
    let t = now();
    let cond = |type_: &str, status: &str, reason: &str, message: &str| {
        let mut c = json!({
            "type": type_, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": t,
        });
        if transition && let Some(o) = c.as_object_mut() {
            o.insert("lastTransitionTime".into(), json!(t));
        }
        c
    };
    let internal_ip = match (&ctx.net, ctx.node_index(name)) {
        (Some(_), Some(i)) => crate::netns::Net::node_ip(i).to_string(),
        _ => "127.0.0.1".to_string(),
    };
    let resources = json!({"cpu": CPU, "memory": MEMORY, "pods": PODS, "ephemeral-storage": "100Gi"});
    let status = json!({"status": {
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": internal_ip},
            {"type": "Hostname", "address": name},
        ],
        "capacity": resources,
        "allocatable": resources,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": name, "systemUUID": name, "bootID": name,
            "kernelVersion": "test", "osImage": "kpatrol test kubelet",
            "containerRuntimeVersion": "process://1", "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64",
        },
    }});
    let api: Api<Node> = Api::all(ctx.client.clone());
    let what = format!("node {name}: status");
    let (pp, patch) = (PatchParams::default(), Patch::Strategic(status));
    retry(&what, || api.patch_status(name, &pp, &patch)).await?;
    Ok(())
}

/// Renews the node's Lease, creating it (owned by the Node) when missing.
async fn renew_lease(ctx: &Ctx, name: &str, uid: &str) -> anyhow::Result<()> {
    let api: Api<Lease> = Api::namespaced(ctx.client.clone(), LEASE_NAMESPACE);
    let spec = json!({
        "holderIdentity": name,
        "leaseDurationSeconds": LEASE_SECONDS,
        "renewTime": now_micro(),
    });
    let patch = json!({ "spec": spec });
    match call(api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))).await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(404) => {
            let mut meta = json!({"name": name, "namespace": LEASE_NAMESPACE});
            if !uid.is_empty()
                && let Some(m) = meta.as_object_mut()
            {
                let owner = json!([{"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}]);
                m.insert("ownerReferences".into(), owner);
            }
            let lease: Lease = serde_json::from_value(json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": meta,
                "spec": spec,
            }))?;
            call(api.create(&PostParams::default(), &lease)).await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
