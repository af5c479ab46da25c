//! `kpatrol apply`, `prune` and `diff`: server-side apply with field manager `kpatrol` (a
//! server-side dry run for `diff` and `--dry-run`, compared with the live object), and prune
//! of what a set (`--set`) holds that no task produces any more.

use std::collections::BTreeSet;

use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::Value;

use super::{ClusterError, FIELD_MANAGER, KINDS, MANAGED, api_for, at, describe, str_at};
use crate::names::label;

/// What applying one object does (or did).
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Create,
    /// Field paths the apply sets, changes or removes.
    Update(Vec<String>),
    Unchanged,
}

/// Field paths where `after` differs from `before`, both ways: set, changed, or gone. Pure.
pub fn differences(before: &Value, after: &Value, path: &str, out: &mut Vec<String>) {
    let at = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let keys: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
            for k in keys {
                match (b.get(k), a.get(k)) {
                    (Some(bv), Some(av)) => differences(bv, av, &at(k), out),
                    _ => out.push(at(k)),
                }
            }
        }
        (Value::Array(b), Value::Array(a)) if b.len() == a.len() => {
            for (i, (bv, av)) in b.iter().zip(a).enumerate() {
                differences(bv, av, &format!("{path}[{i}]"), out);
            }
        }
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => {}
        (x, y) if x == y => {}
        _ => out.push(path.to_string()),
    }
}

/// What applying changed: the live object before against what the server holds (or would
/// hold) after, leaving out what the server keeps for itself (status, and metadata but
/// labels and annotations). Pure.
pub fn change(live: Option<&Value>, applied: &Value) -> Change {
    let Some(live) = live else { return Change::Create };
    let mut paths = Vec::new();
    differences(&comparable(live), &comparable(applied), "", &mut paths);
    if paths.is_empty() {
        Change::Unchanged
    } else {
        Change::Update(paths)
    }
}

/// An object as compared: no status, metadata only its labels and annotations.
fn comparable(o: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Value::Object(m) = o {
        for (k, v) in m {
            match k.as_str() {
                "status" => {}
                "metadata" => {
                    let mut meta = serde_json::Map::new();
                    for part in ["labels", "annotations"] {
                        if let Some(x) = v.get(part) {
                            meta.insert(part.into(), x.clone());
                        }
                    }
                    out.insert(k.clone(), Value::Object(meta));
                }
                _ => {
                    out.insert(k.clone(), v.clone());
                }
            }
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

/// Live members of the set `set` (applied with `--set`) that no task produces any more,
/// workloads first and what they use last (RBAC, ServiceAccounts, ConfigMaps). Objects owned
/// by another (the Jobs a CronJob or a launcher created), namespaces and other sets' objects
/// are never pruned. Pure.
pub fn prune_candidates<'a>(desired: &[Value], live: &'a [Value], set: &str) -> Vec<&'a Value> {
    let keep: BTreeSet<_> = desired.iter().map(identity).collect();
    let mut gone: Vec<&Value> = live
        .iter()
        .filter(|o| str_at(o, &["metadata", "labels", label::SET]) == Some(set))
        .filter(|o| str_at(o, &["kind"]) != Some("Namespace"))
        .filter(|o| {
            at(o, &["metadata", "ownerReferences"])
                .and_then(Value::as_array)
                .is_none_or(|a| a.is_empty())
        })
        .filter(|o| str_at(o, &["metadata", "labels", label::MANAGED_BY]) == Some(label::MANAGER))
        .filter(|o| !keep.contains(&identity(o)))
        .collect();
    gone.sort_by_key(|o| deletion_order(str_at(o, &["kind"]).unwrap_or("")));
    gone
}

/// Where a kind comes when deleting: what runs before what it runs with.
fn deletion_order(kind: &str) -> usize {
    const ORDER: &[&str] = &[
        "CronJob",
        "Job",
        "Service",
        "RoleBinding",
        "ClusterRoleBinding",
        "Role",
        "ClusterRole",
        "ServiceAccount",
        "ConfigMap",
    ];
    ORDER.iter().position(|k| *k == kind).unwrap_or(ORDER.len())
}

/// `objects` labelled as members of the set `set`, for `apply --set`.
pub fn in_set(objects: &[Value], set: &str) -> Vec<Value> {
    objects
        .iter()
        .cloned()
        .map(|mut o| {
            if str_at(&o, &["kind"]) != Some("Namespace")
                && let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut)
            {
                let labels = meta
                    .entry("labels")
                    .or_insert_with(|| Value::Object(Default::default()));
                if let Some(l) = labels.as_object_mut() {
                    l.insert(label::SET.into(), Value::String(set.to_string()));
                }
            }
            o
        })
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

/// What an apply did before it stopped: each object's change in order, and the error that
/// stopped it (the objects after it were not applied).
#[derive(Debug)]
pub struct Applied {
    pub changes: Vec<(String, Change)>,
    pub error: Option<ClusterError>,
}

/// Server-side applies every object in order (with `dry_run`, as a server-side dry run that
/// changes nothing), always: applying is idempotent, and only the server knows what an
/// apply removes. Each change is the live object against the server's answer. Stops at the
/// first error.
pub async fn apply(client: &kube::Client, objects: &[Value], dry_run: bool) -> Applied {
    let mut changes = Vec::new();
    for o in objects {
        match apply_one(client, o, dry_run).await {
            Ok(ch) => changes.push((describe(o), ch)),
            Err(e) => {
                return Applied {
                    changes,
                    error: Some(e),
                };
            }
        }
    }
    Applied { changes, error: None }
}

async fn apply_one(client: &kube::Client, o: &Value, dry_run: bool) -> Result<Change, ClusterError> {
    let (api, name) = api_of(client, o)?;
    let live = api.get_opt(name).await.map_err(|e| api_error(o, e))?;
    if str_at(o, &["kind"]) == Some("Namespace") && live.is_some() {
        // an existing namespace is the cluster's: kpatrol neither labels nor adopts it
        return Ok(Change::Unchanged);
    }
    let live = live.map(|l| serde_json::to_value(l).unwrap_or(Value::Null));
    let obj: DynamicObject = serde_json::from_value(o.clone()).map_err(|source| ClusterError::BadObject {
        object: describe(o),
        source,
    })?;
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    params.dry_run = dry_run;
    let applied = api
        .patch(name, &params, &Patch::Apply(&obj))
        .await
        .map_err(|e| api_error(o, e))?;
    let applied = serde_json::to_value(applied).unwrap_or(Value::Null);
    Ok(change(live.as_ref(), &applied))
}

/// Lists the members of the set `set` in every namespace (and cluster-wide kinds).
pub async fn set_members(client: &kube::Client, set: &str) -> Result<Vec<Value>, ClusterError> {
    let selector = format!("{MANAGED},{}={set}", label::SET);
    let mut out = Vec::new();
    for (version, kind, _, _) in KINDS {
        if *kind == "Namespace" {
            continue;
        }
        let (ar, _) = super::resource(version, kind).ok_or_else(|| ClusterError::UnknownKind {
            api_version: version.to_string(),
            kind: kind.to_string(),
        })?;
        let api: kube::Api<DynamicObject> = kube::Api::all_with(client.clone(), &ar);
        let list = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| ClusterError::Api {
                kind: kind.to_string(),
                name: format!("list of set {set}"),
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
    Ok(out)
}

/// Deletes (or, with `dry_run`, lists) what no task produces any more.
/// Stops at the first error: what was deleted before it is in `Pruned::deleted`.
pub async fn prune(client: &kube::Client, desired: &[Value], set: &str, dry_run: bool) -> Pruned {
    let live = match set_members(client, set).await {
        Ok(l) => l,
        Err(e) => {
            return Pruned {
                deleted: vec![],
                error: Some(e),
            };
        }
    };
    let mut deleted = Vec::new();
    for o in prune_candidates(desired, &live, set) {
        if !dry_run && let Err(error) = delete(client, o).await {
            return Pruned {
                deleted,
                error: Some(error),
            };
        }
        deleted.push(describe(o));
    }
    Pruned { deleted, error: None }
}

/// What a prune deleted (or would delete) before it stopped, and what stopped it.
#[derive(Debug)]
pub struct Pruned {
    pub deleted: Vec<String>,
    pub error: Option<ClusterError>,
}

async fn delete(client: &kube::Client, o: &Value) -> Result<(), ClusterError> {
    let (api, name) = api_of(client, o)?;
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(api_error(o, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_change_is_what_the_server_would_hold_against_what_it_holds() {
        let applied = json!({"kind": "ConfigMap", "metadata": {"name": "a", "uid": "u", "resourceVersion": "8", "labels": {"x": "1"}}, "data": {"k": "v"}});
        assert_eq!(change(None, &applied), Change::Create);
        let live = json!({"kind": "ConfigMap", "metadata": {"name": "a", "uid": "u", "resourceVersion": "7", "managedFields": [], "labels": {"x": "1"}}, "data": {"k": "v"}, "status": {"x": 1}});
        assert_eq!(change(Some(&live), &applied), Change::Unchanged);
        let before =
            json!({"metadata": {"labels": {"x": "2"}}, "data": {"k": "w", "gone": "g"}, "spec": {"timeZone": "UTC"}});
        assert_eq!(
            change(
                Some(&before),
                &json!({"metadata": {"labels": {"x": "1"}}, "data": {"k": "w", "new": "n"}, "spec": {}})
            ),
            Change::Update(vec![
                "data.gone".into(),
                "data.new".into(),
                "metadata.labels.x".into(),
                "spec.timeZone".into()
            ]),
            "set, changed and removed fields all show"
        );
        // numbers compare by value (the server may send 3 for 3.0)
        assert_eq!(
            change(Some(&json!({"spec": {"n": 3}})), &json!({"spec": {"n": 3.0}})),
            Change::Unchanged
        );
    }

    #[test]
    fn prune_spares_what_tasks_still_produce_owned_objects_and_namespaces() {
        let m = |kind: &str, name: &str, owned: bool| {
            let mut o = json!({"kind": kind, "metadata": {"name": name, "namespace": "kpatrol", "labels": {"app.kubernetes.io/managed-by": "kpatrol", "kpatrol.dev/set": "team-a"}}});
            if owned {
                o["metadata"]["ownerReferences"] = json!([{"kind": "CronJob", "name": "x"}]);
            }
            o
        };
        let desired = vec![m("CronJob", "keep", false), m("ConfigMap", "keep-task", false)];
        let mut other_set = m("CronJob", "theirs", false);
        other_set["metadata"]["labels"]["kpatrol.dev/set"] = json!("team-b");
        let mut no_set = m("CronJob", "unset", false);
        no_set["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("kpatrol.dev/set");
        let live = vec![
            m("CronJob", "keep", false),
            m("ConfigMap", "keep-task", false),
            m("ConfigMap", "gone-task", false),
            m("ServiceAccount", "gone", false),
            m("CronJob", "gone", false),
            other_set,
            no_set,
            m("Job", "keep-29000000", true),
            json!({"kind": "Namespace", "metadata": {"name": "kpatrol", "labels": {"app.kubernetes.io/managed-by": "kpatrol"}}}),
            json!({"kind": "ConfigMap", "metadata": {"name": "theirs", "namespace": "kpatrol", "labels": {"app.kubernetes.io/managed-by": "helm"}}}),
        ];
        let names: Vec<String> = prune_candidates(&desired, &live, "team-a")
            .iter()
            .map(|o| describe(o))
            .collect();
        assert_eq!(
            names,
            [
                "CronJob kpatrol/gone",
                "ServiceAccount kpatrol/gone",
                "ConfigMap kpatrol/gone-task"
            ],
            "the set's own, workloads first"
        );
    }
}
