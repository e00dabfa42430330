//! Status conditions, keeping `lastTransitionTime` when a status does not change.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::crd::{ChatRoomStatus, Condition};

/// The outcome of one aspect of a reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    pub reason: String,
    pub message: String,
}

impl Outcome {
    pub fn yes(reason: &str, message: impl Into<String>) -> Self {
        Outcome { ok: true, reason: reason.into(), message: message.into() }
    }

    pub fn no(reason: &str, message: impl Into<String>) -> Self {
        Outcome { ok: false, reason: reason.into(), message: message.into() }
    }
}

/// The conditions of one status, in a stable order.
pub struct Conditions(Vec<Condition>);

impl From<&ChatRoomStatus> for Conditions {
    fn from(status: &ChatRoomStatus) -> Self {
        Conditions(status.conditions.clone())
    }
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

impl Conditions {
    /// Sets a condition; returns true when its status or reason changed.
    pub fn set(&mut self, type_: &str, outcome: Outcome) -> bool {
        let status = if outcome.ok { "True" } else { "False" };
        let existing = self.0.iter_mut().find(|c| c.type_ == type_);
        match existing {
            Some(c) => {
                let changed = c.status != status || c.reason != outcome.reason;
                if c.status != status {
                    c.last_transition_time = now();
                }
                c.status = status.into();
                c.reason = outcome.reason;
                c.message = outcome.message;
                changed
            }
            None => {
                self.0.push(Condition {
                    type_: type_.into(),
                    status: status.into(),
                    reason: outcome.reason,
                    message: outcome.message,
                    last_transition_time: now(),
                    observed_generation: None,
                });
                true
            }
        }
    }

    /// The conditions in a stable order, each marked as describing `generation`.
    pub fn into_vec(mut self, generation: Option<i64>) -> Vec<Condition> {
        for c in &mut self.0 {
            c.observed_generation = generation;
        }
        let rank = |t: &str| ["Ready", "TopicReady", "Registered"].iter().position(|x| *x == t).unwrap_or(9);
        self.0.sort_by_key(|c| rank(&c.type_));
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_when_the_status_changes() {
        let mut c = Conditions(Vec::new());
        assert!(c.set("Ready", Outcome::yes("Reconciled", "")));
        let first = c.0[0].last_transition_time.clone();
        assert!(!c.set("Ready", Outcome::yes("Reconciled", "again")), "same status and reason");
        assert_eq!(c.0[0].last_transition_time, first);
        assert!(c.set("TopicReady", Outcome::no("PartitionsCannotDecrease", "x")));
        assert_eq!(c.into_vec(Some(1)).iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(), ["Ready", "TopicReady"]);
    }
}
