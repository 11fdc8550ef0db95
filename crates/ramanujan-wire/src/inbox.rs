//! What an agent does with a message from its inbox, whichever driver carries
//! it (the NATS agent, the Spin component, the fuzz target): envelopes are
//! handled in order, a submission is parsed, refused or taken. The driver then
//! saves, and only then sends [`Handled::out`] and publishes [`Handled::acks`].

use crate::wire::{Inbound, SubmitAck};
use ramanujan_agent::agent::Agent;
use ramanujan_agent::protocol::Envelope;
use ramanujan_core::parse::parse_expr;

/// What handling inbox messages produced, to release once saved.
#[derive(Debug, Default)]
pub struct Handled {
    /// Messages to send.
    pub out: Vec<Envelope>,
    /// Submissions to acknowledge (taken, or refused with a reason).
    pub acks: Vec<SubmitAck>,
    /// Messages handled: envelopes and submissions.
    pub messages: usize,
}

impl Handled {
    /// Hands one decoded inbox message (see [`crate::wire::decode_inbound`],
    /// which refuses oversized batches) to the agent.
    pub fn take(&mut self, agent: &mut Agent, inbound: Inbound) {
        match inbound {
            Inbound::Envelope(envelope) => {
                self.messages += 1;
                self.out.extend(agent.handle(envelope));
            }
            Inbound::Envelopes(envelopes) => {
                self.messages += envelopes.len();
                for envelope in envelopes {
                    self.out.extend(agent.handle(envelope));
                }
            }
            Inbound::Submit { request, expression } => {
                self.messages += 1;
                let ack = match parse_expr(&expression) {
                    Ok(_) if let Some(full) = agent.refuses_submissions() => SubmitAck {
                        request,
                        root: None,
                        error: Some(full),
                        unavailable: true,
                    },
                    Ok(expr) => {
                        let (root, sent) = agent.submit(&expr);
                        self.out.extend(sent);
                        SubmitAck {
                            request,
                            root: Some(root.to_string()),
                            unavailable: false,
                            error: None,
                        }
                    }
                    Err(e) => SubmitAck {
                        request,
                        root: None,
                        error: Some(e.to_string()),
                        unavailable: false,
                    },
                };
                self.acks.push(ack);
            }
            Inbound::Sync => {
                self.messages += 1;
                self.out.extend(agent.sync_with_neighbors());
            }
        }
    }
}
