//! Names that what kpatrol renders and what reads it back must agree on: labels and
//! annotations on its objects, and the environment of its pods. One definition each, so a
//! writer and a reader cannot drift apart.

/// Labels.
pub mod label {
    /// The task an object belongs to (its base name).
    pub const TASK: &str = "kpatrol.dev/task";
    /// The task's kind as written (`HttpCheck`, `Netdns`, …).
    pub const KIND: &str = "kpatrol.dev/kind";
    /// On cluster-wide objects: the namespace of the task they serve.
    pub const NAMESPACE: &str = "kpatrol.dev/namespace";
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    /// `probe`, `launcher`, …
    pub const COMPONENT: &str = "app.kubernetes.io/component";
    /// The set an object was applied in (`kpatrol apply --set`), the scope of `prune`.
    pub const SET: &str = "kpatrol.dev/set";
    /// Set by Kubernetes on a Job's pods.
    pub const JOB_NAME: &str = "batch.kubernetes.io/job-name";
    /// The value of [`MANAGED_BY`] on everything kpatrol manages.
    pub const MANAGER: &str = "kpatrol";
}

/// Annotations.
pub mod annotation {
    /// On a CronJob: the number of rounds to run (`rounds: N`).
    pub const ROUNDS: &str = "kpatrol.dev/rounds";
    /// On a CronJob: the number of rounds started (counted as each starts).
    pub const ROUNDS_DONE: &str = "kpatrol.dev/rounds-done";
    /// On a CronJob: the Job of the last round counted.
    pub const LAST_ROUND: &str = "kpatrol.dev/last-round";
    /// Set by Kubernetes on an Indexed Job's pods.
    pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
}

/// Environment variables of kpatrol's pods.
pub mod env {
    /// The pod's name, namespace and node (from the downward API).
    pub const POD_NAME: &str = "KPATROL_POD_NAME";
    pub const NAMESPACE: &str = "KPATROL_NAMESPACE";
    pub const NODE_NAME: &str = "KPATROL_NODE_NAME";
    /// The pod's Job (from the [`super::label::JOB_NAME`] label).
    pub const JOB_NAME: &str = "KPATROL_JOB_NAME";
    /// The pod's index in its Indexed Job.
    pub const AGENT_INDEX: &str = "KPATROL_AGENT_INDEX";
    /// OpenTelemetry resource attributes, before `OTEL_RESOURCE_ATTRIBUTES`.
    pub const RESOURCE_ATTRIBUTES: &str = "KPATROL_RESOURCE_ATTRIBUTES";
    /// `rounds: N` of a counted task, and its CronJob.
    pub const ROUNDS: &str = "KPATROL_ROUNDS";
    pub const CRONJOB: &str = "KPATROL_CRONJOB";
}

/// A rendered task writes every name its readers read back.
#[cfg(test)]
mod tests {
    #[test]
    fn what_is_rendered_carries_every_name_read_back() {
        let f = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/render/coredns.yaml");
        let Ok(ft) = crate::plan::load_file(&f) else {
            panic!("{} reads", f.display())
        };
        let Ok(r) = crate::render::render(&ft.plans, &Default::default()) else {
            panic!("{} renders", f.display())
        };
        let text = serde_json::Value::Array(r.objects).to_string();
        for name in [
            super::env::POD_NAME,
            super::env::NAMESPACE,
            super::env::NODE_NAME,
            super::env::JOB_NAME,
            super::env::AGENT_INDEX,
            super::env::RESOURCE_ATTRIBUTES,
            super::env::ROUNDS,
            super::env::CRONJOB,
        ] {
            assert!(text.contains(&format!(r#""name":"{name}""#)), "env {name}");
        }
        for name in [
            super::label::TASK,
            super::label::KIND,
            super::label::NAMESPACE,
            super::label::COMPONENT,
            super::annotation::ROUNDS,
        ] {
            assert!(text.contains(&format!(r#""{name}":""#)), "label or annotation {name}");
        }
        let managed = format!(r#""{}":"{}""#, super::label::MANAGED_BY, super::label::MANAGER);
        assert!(text.contains(&managed));
        for name in [super::label::JOB_NAME, super::annotation::COMPLETION_INDEX] {
            assert!(text.contains(&format!("['{name}']")), "downward API {name}");
        }
    }
}
