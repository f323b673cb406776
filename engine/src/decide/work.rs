//! The commands about a task's work after its award: accepting the verification, asking for
//! changes, cancelling, resolving a dispute, messages, and the payment provider's refusal.
//! Part of [`super`]: each reads the state and turns one command into events, or refuses it.

use gavel_protocol::command as wire;
use gavel_protocol::views::{AcceptVerificationResult, CancelTaskResult, RequestChangesResult};
use gavel_protocol::{DisputeOutcome, Millis, Role, TaskId, TaskStatus};

use super::{REVISIONS_TO_DISPUTE, decided, empty, require_status, split_payment};
use crate::award::{reject_pending, void_award};
use crate::command::Actor;
use crate::engine::{Decision, Engine};
use crate::event::EventKind;
use crate::rejection::Rejection;
use crate::reply::Reply;

impl Engine {
    pub(super) fn accept_verification(
        &self,
        c: &wire::AcceptVerification,
        actor: &Actor,
    ) -> Result<Decision, Rejection> {
        let task = self.owned_task(&c.task_id, actor)?;
        require_status(
            task,
            &[TaskStatus::Submitted],
            "only a submitted verification can be accepted",
        )?;
        let a = task
            .assigned
            .as_ref()
            .expect("a submitted task is assigned");
        let (coach_amount, platform_fee) = split_payment(task.held_now());
        let events = vec![
            EventKind::PaymentReleased {
                task_id: c.task_id.clone(),
                coach_id: a.coach_id.clone(),
                coach_amount,
                platform_fee,
            },
            EventKind::TaskCompleted {
                task_id: c.task_id.clone(),
                coach_id: a.coach_id.clone(),
                coach_amount,
                platform_fee,
                rating: Some(c.rating),
            },
        ];
        decided(
            Some(&task.spec.owner),
            events,
            Reply::AcceptVerification(AcceptVerificationResult {
                coach_amount,
                platform_fee,
            }),
        )
    }

    pub(super) fn request_changes(
        &self,
        c: &wire::RequestChanges,
        actor: &Actor,
    ) -> Result<Decision, Rejection> {
        let task = self.owned_task(&c.task_id, actor)?;
        require_status(
            task,
            &[TaskStatus::Submitted],
            "changes can be requested only on a submission",
        )?;
        let revisions = task.revisions + 1;
        let coach_id = task.coach().expect("a submitted task is assigned").clone();
        let mut events = vec![EventKind::ChangesRequested {
            task_id: c.task_id.clone(),
            coach_id,
            reason: c.reason.clone(),
            revisions,
        }];
        if revisions >= REVISIONS_TO_DISPUTE {
            events.push(EventKind::TaskDisputed {
                task_id: c.task_id.clone(),
            });
        }
        decided(
            Some(&task.spec.owner),
            events,
            Reply::RequestChanges(RequestChangesResult { revisions }),
        )
    }

    pub(super) fn cancel_task(
        &self,
        c: &wire::CancelTask,
        actor: &Actor,
    ) -> Result<Decision, Rejection> {
        let task = if actor.is_admin() {
            let task = self.visible_task(&c.task_id, actor)?;
            if task.status.is_final() {
                return Err(Rejection::conflict(format!(
                    "task {} is already {}",
                    c.task_id, task.status
                )));
            }
            task
        } else {
            let task = self.owned_task(&c.task_id, actor)?;
            require_status(
                task,
                &[TaskStatus::Open, TaskStatus::Assigned],
                "the owner may cancel only while open or assigned",
            )?;
            task
        };
        let mut events = reject_pending(task);
        events.push(EventKind::TaskCanceled {
            task_id: c.task_id.clone(),
            coach_id: task.coach().cloned(),
            reason: c.reason.clone(),
        });
        let refunded = task.held_now();
        if refunded > 0 {
            events.push(EventKind::PaymentRefunded {
                task_id: c.task_id.clone(),
                amount: refunded,
            });
        }
        if task.status == TaskStatus::Open {
            events.push(EventKind::TaskClosed {
                task_id: c.task_id.clone(),
                status: TaskStatus::Canceled,
            });
        }
        decided(
            Some(&task.spec.owner),
            events,
            Reply::CancelTask(CancelTaskResult { refunded }),
        )
    }

    pub(super) fn resolve_dispute(
        &self,
        c: &wire::ResolveDispute,
        actor: &Actor,
    ) -> Result<Decision, Rejection> {
        if !actor.is_admin() {
            return Err(Rejection::forbidden("only admins resolve disputes"));
        }
        let task = self.visible_task(&c.task_id, actor)?;
        require_status(
            task,
            &[TaskStatus::Disputed],
            "only a disputed task can be resolved",
        )?;
        let task_id = c.task_id.clone();
        let events = match c.outcome {
            DisputeOutcome::Release => {
                let coach_id = task.coach().expect("a disputed task is assigned").clone();
                let (coach_amount, platform_fee) = split_payment(task.held_now());
                vec![
                    EventKind::PaymentReleased {
                        task_id: task_id.clone(),
                        coach_id: coach_id.clone(),
                        coach_amount,
                        platform_fee,
                    },
                    EventKind::TaskCompleted {
                        task_id,
                        coach_id,
                        coach_amount,
                        platform_fee,
                        rating: None,
                    },
                ]
            }
            DisputeOutcome::Refund => vec![EventKind::PaymentRefunded {
                task_id,
                amount: task.held_now(),
            }],
        };
        decided(Some(&task.spec.owner), events, empty())
    }

    pub(super) fn send_message(
        &self,
        c: &wire::SendMessage,
        actor: &Actor,
    ) -> Result<Decision, Rejection> {
        let task = self.visible_task(&c.task_id, actor)?;
        let is_owner = actor.role == Role::Seeker && task.spec.owner == actor.user;
        let is_coach = actor.role == Role::Coach && task.coach() == Some(&actor.user);
        if !is_owner && !is_coach {
            return Err(Rejection::forbidden(
                "only the owner and the assigned coach exchange messages",
            ));
        }
        if task.status.is_final() {
            return Err(Rejection::conflict(format!(
                "task {} is {}",
                c.task_id, task.status
            )));
        }
        let kind = EventKind::TaskMessage {
            task_id: c.task_id.clone(),
            from: actor.user.clone(),
            coach_id: task.coach().cloned(),
            text: c.text.clone(),
        };
        decided(Some(&task.spec.owner), vec![kind], empty())
    }

    pub(super) fn payment_failed(
        &self,
        task_id: &TaskId,
        actor: &Actor,
        now: Millis,
    ) -> Result<Decision, Rejection> {
        if !actor.is_admin() {
            return Err(Rejection::forbidden(
                "only the payment service (admin) reports failed payments",
            ));
        }
        let task = self.visible_task(task_id, actor)?;
        require_status(
            task,
            &[TaskStatus::Assigned],
            "a payment can fail only while the task is assigned",
        )?;
        let mut events = vec![EventKind::PaymentFailed {
            task_id: task_id.clone(),
            amount: task.held_now(),
        }];
        // The accepted bid, also when an on-call coach has since taken the task over.
        events.extend(void_award(task));
        events.push(self.reopen(task, now));
        decided(Some(&task.spec.owner), events, empty())
    }
}
