//! The drill's verdict: what Kassa, Kaspi and the webhook receiver show once the load is
//! over, checked per logical invoice, and the detection delays after restarts.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::common::receiver::Receiver;
use crate::drill::{Op, Sim};
use crate::{
    invoices, number_in, post_invoice, Answer, Logical, Measured, Sent, DETECTION_LIMIT, HOOK_PATH,
};

/// What Kassa, Kaspi and the webhook receiver show at one moment.
pub struct World {
    pub ops: Vec<Op>,
    pub invoices: Vec<Value>,
    /// Webhook deliveries: (webhook-id, invoice id, status).
    hooks: Vec<(String, i64, String)>,
}

pub async fn observe(
    sim: &Sim,
    http: &reqwest::Client,
    base: &str,
    api_key: &str,
    receiver: &Receiver,
) -> World {
    let invoices = invoices(http, base, api_key, &[])
        .await
        .unwrap_or_else(|e| panic!("Kassa lists its invoices: {e}"));
    let hooks = receiver
        .requests()
        .into_iter()
        .filter(|r| r.path == HOOK_PATH)
        .map(|r| {
            let body = r.json();
            (
                r.header("webhook-id").to_owned(),
                body["invoice"]["id"].as_i64().unwrap_or_default(),
                body["invoice"]["status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    World {
        ops: sim.operations().await,
        invoices,
        hooks,
    }
}

/// Kassa's (ApiPay) status for a final Kaspi status, `None` while open.
fn expected_status(kaspi: &str) -> Option<&'static str> {
    match kaspi::Status::parse(kaspi).outcome() {
        kaspi::Outcome::Open => None,
        kaspi::Outcome::Paid => Some("paid"),
        kaspi::Outcome::Failed => Some("cancelled"),
        kaspi::Outcome::Expired => Some("expired"),
    }
}

impl World {
    fn invoices_of(&self, order: &str) -> Vec<&Value> {
        self.invoices
            .iter()
            .filter(|i| i["external_order_id"] == order)
            .collect()
    }

    fn ops_of(&self, description: &str) -> Vec<&Op> {
        self.ops
            .iter()
            .filter(|op| op.comment.contains(description))
            .collect()
    }

    /// Final Kaspi operations that Kassa does not show yet, and Kassa's changes that no
    /// webhook carried yet.
    pub fn unsettled(&self, tag: char) -> (usize, usize) {
        let unrecorded = self
            .ops
            .iter()
            .filter(|op| {
                let (Some(n), Some(want)) =
                    (number_in(&op.comment, tag), expected_status(&op.status))
                else {
                    return false;
                };
                let logical = Logical::new(tag, n);
                !self
                    .invoices_of(&logical.order)
                    .iter()
                    .any(|i| i["status"] == want)
            })
            .count();
        let undelivered = self
            .invoices
            .iter()
            .filter(|i| {
                let status = i["status"].as_str().unwrap_or_default();
                !is_open(status)
                    && !self
                        .hooks
                        .iter()
                        .any(|(_, id, s)| i["id"] == *id && s == status)
            })
            .count();
        (unrecorded, undelivered)
    }

    pub fn check(&self, tag: char, issued: usize, sent: &[Sent], failures: &mut Failures) {
        let by_n: HashMap<usize, &Sent> = sent.iter().map(|s| (s.n, s)).collect();
        for n in 0..issued {
            let logical = Logical::new(tag, n);
            let order = logical.order.as_str();
            let invoices = self.invoices_of(order);
            let ops = self.ops_of(&logical.description);
            let ids: Vec<i64> = invoices.iter().filter_map(|i| i["id"].as_i64()).collect();
            let shown = |ops: &[&Op]| {
                ops.iter()
                    .map(|op| format!("{} {}", op.id, op.status))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            match by_n.get(&n).map(|s| &s.answer) {
                Some(Answer::Created(id)) if !ids.contains(id) => failures.add(
                    order,
                    "answered id not in Kassa",
                    format!("the client got id {id}, Kassa lists {ids:?}"),
                ),
                Some(Answer::Created(_)) => {}
                Some(Answer::Refused(status, body)) => {
                    failures.add(order, "refused", format!("the client got {status} {body}"))
                }
                Some(Answer::None) => {
                    let s = by_n[&n];
                    failures.add(
                        order,
                        "no answer",
                        format!(
                            "no 201 in {:.0} s over {} tries: {}",
                            s.took.as_secs_f64(),
                            s.tries,
                            s.seen
                                .iter()
                                .map(|(what, k)| format!("{what} ×{k}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                }
                None => failures.add(order, "no answer", "the client never finished".into()),
            }
            if invoices.len() != 1 {
                let statuses: Vec<&Value> = invoices.iter().map(|i| &i["status"]).collect();
                failures.add(
                    order,
                    if invoices.is_empty() {
                        "lost in Kassa"
                    } else {
                        "doubled in Kassa"
                    },
                    format!("{} Kassa invoices {ids:?} {statuses:?}", invoices.len()),
                );
            }
            if ops.len() > 1 {
                let paid = ops.iter().filter(|op| op.status == "Processed").count();
                failures.add(
                    order,
                    if paid > 1 {
                        "paid twice at Kaspi"
                    } else {
                        "doubled at Kaspi"
                    },
                    format!("{} Kaspi operations: {}", ops.len(), shown(&ops)),
                );
            }
            let op_ids: Vec<String> = ops.iter().map(|op| op.id.to_string()).collect();
            for invoice in &invoices {
                if let Some(linked) = invoice["kaspi_invoice_id"].as_str() {
                    if !op_ids.iter().any(|id| id == linked) {
                        failures.add(
                            order,
                            "linked to another invoice's Kaspi operation",
                            format!(
                                "invoice {} holds Kaspi operation {linked}; its own: {}",
                                invoice["id"],
                                shown(&ops)
                            ),
                        );
                    }
                }
            }
            for op in &ops {
                let Some(want) = expected_status(&op.status) else {
                    continue;
                };
                if !invoices.iter().any(|i| i["status"] == want) {
                    let got: Vec<String> = invoices
                        .iter()
                        .map(|i| {
                            format!(
                                "{} {} (kaspi id {})",
                                i["id"], i["status"], i["kaspi_invoice_id"]
                            )
                        })
                        .collect();
                    failures.add(
                        order,
                        if want == "paid" {
                            "payment not recorded"
                        } else {
                            "outcome not recorded"
                        },
                        format!(
                            "Kaspi operation {} is {}, Kassa shows {got:?}",
                            op.id, op.status
                        ),
                    );
                }
            }
            self.check_webhooks(order, &invoices, failures);
        }
    }

    /// Each status change of the invoice under exactly one webhook id.
    fn check_webhooks(&self, order: &str, invoices: &[&Value], failures: &mut Failures) {
        for invoice in invoices {
            let Some(id) = invoice["id"].as_i64() else {
                continue;
            };
            let mut ids_by_status: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (hook_id, _, status) in self.hooks.iter().filter(|(_, i, _)| *i == id) {
                let ids = ids_by_status.entry(status.as_str()).or_default();
                if !ids.contains(&hook_id.as_str()) {
                    ids.push(hook_id);
                }
            }
            for (status, ids) in &ids_by_status {
                if ids.len() > 1 {
                    failures.add(
                        order,
                        "webhook under two ids",
                        format!("invoice {id} → {status} delivered as {ids:?}"),
                    );
                }
            }
            let status = invoice["status"].as_str().unwrap_or_default();
            if !is_open(status) && !ids_by_status.contains_key(status) {
                failures.add(
                    order,
                    "webhook missing",
                    format!("invoice {id} is {status}; webhooks seen: {ids_by_status:?}"),
                );
            }
            if let Some(other) = ids_by_status.keys().find(|s| **s != status) {
                failures.add(
                    order,
                    "webhook for another status",
                    format!("invoice {id} is {status}, a webhook said {other}"),
                );
            }
        }
    }
}

/// A retry with the same key, after everything settled, answers the invoice Kassa has.
pub async fn replays(
    http: &reqwest::Client,
    base: &str,
    api_key: &str,
    tag: char,
    issued: usize,
    world: &World,
    failures: &mut Failures,
) {
    for n in 0..issued {
        let logical = Logical::new(tag, n);
        let ids: Vec<i64> = world
            .invoices_of(&logical.order)
            .iter()
            .filter_map(|i| i["id"].as_i64())
            .collect();
        match post_invoice(http, base, api_key, &logical).await {
            Ok((201, body)) if ids.len() == 1 && body["id"] == ids[0] => {}
            Ok((status, body)) => failures.add(
                &logical.order,
                "replay",
                format!(
                    "a retry with the same key answered {status} {}, Kassa lists {ids:?}",
                    if status == 201 {
                        body["id"].clone()
                    } else {
                        body
                    }
                ),
            ),
            Err(e) => failures.add(&logical.order, "replay", format!("a retry failed: {e}")),
        }
    }
}

/// The delays between a payment right after a restart and Kassa showing it paid, sorted.
pub fn detection(
    tag: char,
    measured: &[Measured],
    first_paid: &HashMap<String, Instant>,
    failures: &mut Failures,
) -> Vec<Duration> {
    let mut delays = Vec::new();
    for m in measured {
        let logical = Logical::new(tag, m.n);
        match first_paid.get(&logical.order) {
            Some(seen) => {
                let delay = seen.saturating_duration_since(m.at);
                if delay > DETECTION_LIMIT {
                    failures.add(
                        &logical.order,
                        "detection too slow",
                        format!("paid at Kaspi (operation {}) after restart #{}, shown paid {:.1} s later", m.op, m.restart, delay.as_secs_f64()),
                    );
                }
                delays.push(delay);
            }
            None => failures.add(
                &logical.order,
                "payment not detected",
                format!(
                    "paid at Kaspi (operation {}) right after restart #{}, never shown paid",
                    m.op, m.restart
                ),
            ),
        }
    }
    delays.sort();
    delays
}

/// Every failed check, by logical invoice.
#[derive(Default)]
pub struct Failures {
    pub list: Vec<(String, &'static str, String)>,
}

impl Failures {
    pub fn add(&mut self, order: &str, kind: &'static str, detail: String) {
        self.list.push((order.to_owned(), kind, detail));
    }

    /// Counts by kind, then every failure (the first 80).
    pub fn report(&self) -> String {
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, kind, _) in &self.list {
            *kinds.entry(kind).or_default() += 1;
        }
        let mut text: Vec<String> = kinds.iter().map(|(k, n)| format!("  {n} × {k}")).collect();
        text.extend(
            self.list
                .iter()
                .take(80)
                .map(|(order, kind, detail)| format!("  {order}: {kind}: {detail}")),
        );
        if self.list.len() > 80 {
            text.push(format!("  … and {} more", self.list.len() - 80));
        }
        text.join("\n")
    }
}

/// Whether an ApiPay status is an open invoice, which has sent no status webhook: `pending`, or
/// `processing` while Kaspi's answer to its create is not known.
fn is_open(status: &str) -> bool {
    status == "pending" || status == "processing"
}
