//! `kpatrol apply`, `prune` and `diff`: server-side apply with field manager `kpatrol`,
//! prune by label of what no task produces any more, and the comparison behind `--dry-run`.

use std::collections::BTreeSet;

use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::Value;

use super::{ClusterError, FIELD_MANAGER, KINDS, MANAGED, api_for, at, describe, str_at};
use crate::names::label;

/// What applying one object does (or did).
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Create,
    /// Field paths whose values differ from the live object.
    Update(Vec<String>),
    Unchanged,
}

/// Field paths of `desired` whose values the live object does not have (what `desired`
/// sets and the server would change). Pure.
pub fn differences(desired: &Value, live: &Value, path: &str, out: &mut Vec<String>) {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => {
            for (k, dv) in d {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match l.get(k) {
                    Some(lv) => differences(dv, lv, &p, out),
                    None => out.push(p),
                }
            }
        }
        (Value::Array(d), Value::Array(l)) if d.len() == l.len() => {
            for (i, (dv, lv)) in d.iter().zip(l).enumerate() {
                differences(dv, lv, &format!("{path}[{i}]"), out);
            }
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        (d, l) if d == l => {}
        _ => out.push(path.to_string()),
    }
}

/// What applying `desired` over `live` changes. Pure.
pub fn change(desired: &Value, live: Option<&Value>) -> Change {
    let Some(live) = live else { return Change::Create };
    let mut paths = Vec::new();
    for part in [
        "metadata",
        "data",
        "spec",
        "rules",
        "roleRef",
        "subjects",
        "automountServiceAccountToken",
    ] {
        if let Some(d) = desired.get(part) {
            let d = if part == "metadata" {
                strip_metadata(d)
            } else {
                d.clone()
            };
            match live.get(part) {
                Some(l) => differences(&d, l, part, &mut paths),
                None => paths.push(part.to_string()),
            }
        }
    }
    if paths.is_empty() {
        Change::Unchanged
    } else {
        Change::Update(paths)
    }
}

/// The parts of metadata kpatrol sets (labels and annotations).
fn strip_metadata(m: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for k in ["labels", "annotations"] {
        if let Some(v) = m.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    Value::Object(out)
}

/// Identity of an object: (kind, namespace, name).
pub fn identity(o: &Value) -> (String, String, String) {
    (
        str_at(o, &["kind"]).unwrap_or("").to_string(),
        str_at(o, &["metadata", "namespace"]).unwrap_or("").to_string(),
        str_at(o, &["metadata", "name"]).unwrap_or("").to_string(),
    )
}

/// Live objects labelled as kpatrol's that no task produces any more, in `namespaces`
/// (cluster-wide objects by their `kpatrol.dev/namespace` label). Objects owned by another
/// (the Jobs a CronJob or a launcher created) and namespaces are never pruned. Pure.
pub fn prune_candidates<'a>(desired: &[Value], live: &'a [Value], namespaces: &[String]) -> Vec<&'a Value> {
    let keep: BTreeSet<_> = desired.iter().map(identity).collect();
    live.iter()
        .filter(|o| str_at(o, &["kind"]) != Some("Namespace"))
        // cluster-wide objects belong to the namespace their label names: only those pruned
        .filter(|o| {
            str_at(o, &["metadata", "namespace"]).is_some()
                || str_at(o, &["metadata", "labels", label::NAMESPACE])
                    .is_some_and(|n| namespaces.iter().any(|x| x == n))
        })
        .filter(|o| {
            at(o, &["metadata", "ownerReferences"])
                .and_then(Value::as_array)
                .is_none_or(|a| a.is_empty())
        })
        .filter(|o| str_at(o, &["metadata", "labels", label::MANAGED_BY]) == Some(label::MANAGER))
        .filter(|o| !keep.contains(&identity(o)))
        .collect()
}

/// The namespaces kpatrol tasks live in, as Namespace objects (applied first).
pub fn namespaces(objects: &[Value]) -> Vec<Value> {
    let names: BTreeSet<&str> = objects
        .iter()
        .filter_map(|o| str_at(o, &["metadata", "namespace"]))
        .collect();
    names
        .into_iter()
        .map(|ns| {
            serde_json::json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "labels": {
                    label::MANAGED_BY: label::MANAGER,
                    "pod-security.kubernetes.io/enforce": "restricted",
                }},
            })
        })
        .collect()
}

/// The API of an object's kind and namespace, and its name.
fn api_of<'a>(client: &kube::Client, o: &'a Value) -> Result<(kube::Api<DynamicObject>, &'a str), ClusterError> {
    let api = api_for(
        client,
        str_at(o, &["apiVersion"]).unwrap_or(""),
        str_at(o, &["kind"]).unwrap_or(""),
        str_at(o, &["metadata", "namespace"]),
    )?;
    Ok((api, str_at(o, &["metadata", "name"]).unwrap_or("")))
}

fn api_error(o: &Value, e: kube::Error) -> ClusterError {
    let (kind, ns, name) = identity(o);
    ClusterError::Api {
        kind,
        name: if ns.is_empty() { name } else { format!("{ns}/{name}") },
        source: e,
    }
}

/// Server-side applies every object (or, with `dry_run`, only compares). Returns each
/// object's change in order; stops at the first API error.
pub async fn apply(
    client: &kube::Client,
    objects: &[Value],
    dry_run: bool,
) -> Result<Vec<(String, Change)>, ClusterError> {
    let mut out = Vec::new();
    for o in objects {
        let (api, name) = api_of(client, o)?;
        let live = api.get_opt(name).await.map_err(|e| api_error(o, e))?;
        let live = live.map(|l| serde_json::to_value(l).unwrap_or(Value::Null));
        let mut ch = change(o, live.as_ref());
        if str_at(o, &["kind"]) == Some("Namespace") && live.is_some() {
            // an existing namespace is the cluster's: kpatrol neither labels nor adopts it
            ch = Change::Unchanged;
        }
        if !dry_run && ch != Change::Unchanged {
            let obj: DynamicObject = serde_json::from_value(o.clone()).map_err(|source| ClusterError::BadObject {
                object: describe(o),
                source,
            })?;
            api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&obj))
                .await
                .map_err(|e| api_error(o, e))?;
        }
        out.push((describe(o), ch));
    }
    Ok(out)
}

/// Lists what kpatrol manages in `namespaces` (and cluster-wide kinds).
pub async fn live_objects(client: &kube::Client, namespaces: &[String]) -> Result<Vec<Value>, ClusterError> {
    let mut out = Vec::new();
    for (version, kind, _, namespaced) in KINDS {
        if *kind == "Namespace" {
            continue;
        }
        let scopes: Vec<Option<&str>> = if *namespaced {
            namespaces.iter().map(|n| Some(n.as_str())).collect()
        } else {
            vec![None]
        };
        for ns in scopes {
            let api = api_for(client, version, kind, ns)?;
            let list = api
                .list(&ListParams::default().labels(MANAGED))
                .await
                .map_err(|e| ClusterError::Api {
                    kind: kind.to_string(),
                    name: format!("list in {}", ns.unwrap_or("the cluster")),
                    source: e,
                })?;
            for item in list.items {
                let mut v = match serde_json::to_value(item) {
                    Ok(Value::Object(m)) => m,
                    _ => serde_json::Map::new(),
                };
                v.insert("apiVersion".into(), Value::String(version.to_string()));
                v.insert("kind".into(), Value::String(kind.to_string()));
                out.push(Value::Object(v));
            }
        }
    }
    Ok(out)
}

/// Deletes (or, with `dry_run`, lists) what no task produces any more.
pub async fn prune(
    client: &kube::Client,
    desired: &[Value],
    namespaces: &[String],
    dry_run: bool,
) -> Result<Vec<String>, ClusterError> {
    let live = live_objects(client, namespaces).await?;
    let mut out = Vec::new();
    for o in prune_candidates(desired, &live, namespaces) {
        if !dry_run {
            let (api, name) = api_of(client, o)?;
            match api.delete(name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(api_error(o, e)),
            }
        }
        out.push(describe(o));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn change_compares_only_what_kpatrol_sets() {
        let desired = json!({"kind": "ConfigMap", "metadata": {"name": "a", "labels": {"x": "1"}}, "data": {"k": "v"}});
        assert_eq!(change(&desired, None), Change::Create);
        let live = json!({"kind": "ConfigMap", "metadata": {"name": "a", "uid": "u", "resourceVersion": "7", "labels": {"x": "1", "other": "y"}}, "data": {"k": "v"}});
        assert_eq!(change(&desired, Some(&live)), Change::Unchanged);
        let live2 = json!({"kind": "ConfigMap", "metadata": {"name": "a", "labels": {"x": "2"}}, "data": {"k": "w"}});
        assert_eq!(
            change(&desired, Some(&live2)),
            Change::Update(vec!["metadata.labels.x".into(), "data.k".into()])
        );
        // numbers compare by value (the server may send 3 for 3.0)
        let d = json!({"spec": {"n": 3.0}});
        assert_eq!(change(&d, Some(&json!({"spec": {"n": 3}}))), Change::Unchanged);
    }

    #[test]
    fn prune_spares_what_tasks_still_produce_owned_objects_and_namespaces() {
        let m = |kind: &str, name: &str, owned: bool| {
            let mut o = json!({"kind": kind, "metadata": {"name": name, "namespace": "kpatrol", "labels": {"app.kubernetes.io/managed-by": "kpatrol"}}});
            if owned {
                o["metadata"]["ownerReferences"] = json!([{"kind": "CronJob", "name": "x"}]);
            }
            o
        };
        let desired = vec![m("CronJob", "keep", false), m("ConfigMap", "keep-task", false)];
        let live = vec![
            m("CronJob", "keep", false),
            m("ConfigMap", "keep-task", false),
            m("CronJob", "gone", false),
            m("ConfigMap", "gone-task", false),
            m("Job", "keep-29000000", true),
            json!({"kind": "Namespace", "metadata": {"name": "kpatrol", "labels": {"app.kubernetes.io/managed-by": "kpatrol"}}}),
            json!({"kind": "ConfigMap", "metadata": {"name": "theirs", "namespace": "kpatrol", "labels": {"app.kubernetes.io/managed-by": "helm"}}}),
        ];
        let names: Vec<String> = prune_candidates(&desired, &live, &["kpatrol".into()])
            .iter()
            .map(|o| describe(o))
            .collect();
        assert_eq!(names, ["CronJob kpatrol/gone", "ConfigMap kpatrol/gone-task"]);
    }
}
