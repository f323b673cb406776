//! Derived counters of open tasks (never serialized; `State::rebuild_index` recomputes them
//! after a snapshot is loaded, `check_invariants` compares them with the tasks).

use std::collections::BTreeMap;

use gavel_protocol::Urgency;
use gavel_protocol::views::UrgencyCounts;

use crate::state::Task;

/// Open tasks by task type and urgency (derived; never serialized).
#[derive(Debug, Clone, Default)]
pub struct OpenByType(pub BTreeMap<String, UrgencyCounts>);

/// Derived data takes no part in comparing states (see [`crate::timers::Timers`]);
/// `check_invariants` compares it with the tasks instead.
impl PartialEq for OpenByType {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

/// Counts a task in (or out of) the open tasks of its type and urgency.
pub(crate) fn bump_type(OpenByType(counts): &mut OpenByType, task: &Task, up: bool) {
    let task_type = task.spec.task_type.as_str();
    if !counts.contains_key(task_type) {
        counts.insert(task_type.to_owned(), UrgencyCounts::default());
    }
    let slot = counts.get_mut(task_type).expect("inserted above");
    bump(slot, task.spec.urgency, up);
    if slot.total() == 0 {
        counts.remove(task_type);
    }
}

pub(crate) fn bump(counts: &mut UrgencyCounts, urgency: Urgency, up: bool) {
    let slot = match urgency {
        Urgency::Urgent => &mut counts.urgent,
        Urgency::Standard => &mut counts.standard,
        Urgency::Flexible => &mut counts.flexible,
    };
    if up {
        *slot += 1;
    } else {
        *slot -= 1;
    }
}
