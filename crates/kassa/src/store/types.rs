//! Plain types the store reads and writes: organizations, API keys, terminals, invoices, jobs
//! and idempotency outcomes. No SQL here; the domain's types
//! (re-exported here) own their text form in the database.

pub use crate::domain::{
    CreateState, EventKind, InvoiceKind, InvoiceStatus, JobKind, KaspiOperationId, Money, Phone,
    RefundStatus, Scopes, TerminalState,
};

/// A merchant: everything else belongs to one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: i64,
    /// Short unique name used by the CLI and the dashboard.
    pub slug: String,
    pub name: String,
    pub created_at: i64,
    /// For an organization's test mode (its twin): the live organization's id; `None` for a
    /// live organization (see `OrgRepo::test_twin`).
    pub live_org_id: Option<i64>,
}

impl Organization {
    /// Whether this is an organization's test mode.
    pub fn is_test(&self) -> bool {
        self.live_org_id.is_some()
    }
}

/// An API key as stored: the raw key is never kept, only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: i64,
    pub org_id: i64,
    pub name: String,
    /// The first characters of the raw key, shown so a key can be recognised and revoked.
    pub prefix: String,
    /// What the key may do.
    pub scopes: Scopes,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// Who a valid (unrevoked) API key authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiKeyOwner {
    pub key_id: i64,
    pub org_id: i64,
    pub scopes: Scopes,
}

/// One Kaspi cashier (terminal) of an organization: the device identity and session, sealed by
/// the caller. An organization may have several, one per cashier phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminal {
    pub id: i64,
    pub org_id: i64,
    pub phone: String,
    pub device_sealed: Vec<u8>,
    pub session_sealed: Option<Vec<u8>>,
    pub state: TerminalState,
    /// Why the state is what it is (for `needs_login`), for people.
    pub state_reason: Option<String>,
    /// Grows on every change of the session: the compare-and-set token between processes.
    pub version: i64,
    pub updated_at: i64,
    /// The device and session are sealed per cashier (`…:{org}:{phone}`); `false` for a row
    /// from before several cashiers, sealed by the organization alone, until its next login.
    pub sealed_per_cashier: bool,
}

/// One refund of a paid invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// ApiPay's integer id.
    pub id: i64,
    /// The UUID the xPayment surface shows.
    pub refund_id: String,
    pub org_id: i64,
    pub invoice_id: i64,
    pub amount: Money,
    pub reason: Option<String>,
    pub status: RefundStatus,
    pub fail_reason: Option<String>,
    pub kaspi_refund_id: Option<String>,
    /// `api` (or the surface that asked).
    pub initiated_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub completed_at: Option<i64>,
    /// As its invoice's: made in a test mode or a sandbox deployment.
    pub is_sandbox: bool,
}

/// One invoice row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    /// ApiPay's integer id.
    pub id: i64,
    /// The UUID the xPayment surface shows.
    pub payment_id: String,
    pub org_id: i64,
    pub kind: InvoiceKind,
    pub amount: Money,
    /// `None` for QR invoices.
    pub phone: Option<Phone>,
    pub description: Option<String>,
    pub external_order_id: Option<String>,
    pub status: InvoiceStatus,
    /// Kaspi's own status text, as last seen.
    pub kaspi_status: Option<String>,
    pub kaspi_operation_id: Option<KaspiOperationId>,
    pub client_name: Option<String>,
    pub total_refunded: Money,
    pub is_sandbox: bool,
    pub create_state: CreateState,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub paid_at: Option<i64>,
    pub cancelled_at: Option<i64>,
    pub expires_at: Option<i64>,
    /// The xPayment client's own JSON object, as given.
    pub metadata: Option<String>,
    pub cancel_reason: Option<String>,
    /// For QR invoices: the link a payer opens (`https://qr.kaspi.kz/…`).
    pub qr_token: Option<String>,
    pub ext_tran_id: Option<String>,
    /// Refunds pending, processing or completed.
    pub refund_reserved: Money,
    /// The marker Kassa put in the Kaspi comment of an invoice by phone (see
    /// [`kaspi_comment`]); `None` for QR payments and invoices made before markers.
    pub kaspi_ref: Option<String>,
    /// The subscription that billed it, for a recurring invoice.
    pub subscription_id: Option<i64>,
    /// For an invoice made from a cart or with a discount: the sum before the discount.
    pub subtotal: Option<Money>,
    /// The discount in whole percent, when one was given.
    pub discount_percentage: Option<i64>,
    pub discount_sum: Option<Money>,
}

impl Invoice {
    /// What can still be refunded.
    pub fn refundable(&self) -> Money {
        match self.amount.checked_sub(self.refund_reserved) {
            Some(left) if self.status == InvoiceStatus::Paid => left.max(Money::ZERO),
            _ => Money::ZERO,
        }
    }
}

/// What the caller knows of an invoice before asking Kaspi for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInvoice {
    /// A fresh UUID made by the caller.
    pub payment_id: String,
    pub org_id: i64,
    pub kind: InvoiceKind,
    pub amount: Money,
    pub phone: Option<Phone>,
    pub description: Option<String>,
    pub external_order_id: Option<String>,
    pub is_sandbox: bool,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub metadata: Option<String>,
    /// The marker for the Kaspi comment ([`new_kaspi_ref`]), for invoices by phone.
    pub kaspi_ref: Option<String>,
    /// When set, the invoice's reconciliation is scheduled then, in the same transaction as
    /// the insert: if the process dies while Kaspi is asked, a later one finishes the create.
    pub reconcile_at: Option<i64>,
    /// The idempotent request making the invoice: linked to it in the same transaction, so a
    /// retry after a crash answers from this invoice instead of making another.
    pub idempotency: Option<IdemLink>,
}

/// The cart of a new invoice: its lines as sold, and the sum and discount that made its amount
/// (see [`crate::domain::cart_totals`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cart {
    pub subtotal: Money,
    pub discount_percentage: Option<i64>,
    pub discount_sum: Money,
    /// Empty for a flat amount with a discount.
    pub items: Vec<NewInvoiceItem>,
}

/// One line of a cart as it is sold: a catalog item's name and price at the time (the item may
/// change or go later), or a Kaspi-native line (`NomenclatureId`, `Type`) as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInvoiceItem {
    pub catalog_item_id: Option<i64>,
    pub name: String,
    /// The unit price charged.
    pub price: Money,
    /// The catalog's price (the price charged when there is no catalog item).
    pub original_price: Money,
    pub count: i64,
    pub unit_id: Option<i64>,
    /// This line's share of the invoice's discount.
    pub discount: Money,
    /// `CATALOGUE` or `FAST_SALE` (Kaspi-native lines).
    pub item_type: Option<String>,
    pub nomenclature_id: Option<i64>,
    pub nomenclature_history_id: Option<i64>,
}

/// A stored line of an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceItem {
    pub id: i64,
    pub invoice_id: i64,
    pub position: i64,
    pub item: NewInvoiceItem,
}

/// An idempotent request in progress: the API key and the `Idempotency-Key` it sent (the API
/// puts it in the request's extensions; handlers pass it down to what they make).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdemLink {
    pub api_key_id: i64,
    pub key: String,
    /// Set when this request took over the record of an earlier run whose process died after
    /// making this: answer from it instead of making another.
    pub recovered: Option<Resource>,
}

impl IdemLink {
    /// The invoice an earlier run of this request made, if any.
    pub fn recovered_invoice(&self) -> Option<i64> {
        match self.recovered? {
            Resource::Invoice(id) => Some(id),
            _ => None,
        }
    }

    /// The refund an earlier run of this request made, if any.
    pub fn recovered_refund(&self) -> Option<i64> {
        match self.recovered? {
            Resource::Refund(id) => Some(id),
            _ => None,
        }
    }

    /// The subscription an earlier run of this request made, if any.
    pub fn recovered_subscription(&self) -> Option<i64> {
        match self.recovered? {
            Resource::Subscription(id) => Some(id),
            _ => None,
        }
    }
}

/// What an idempotent request made, as its record names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Invoice(i64),
    Refund(i64),
    Subscription(i64),
}

impl Resource {
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Resource::Invoice(_) => "invoice",
            Resource::Refund(_) => "refund",
            Resource::Subscription(_) => "subscription",
        }
    }

    pub(crate) fn id(self) -> i64 {
        match self {
            Resource::Invoice(id) | Resource::Refund(id) | Resource::Subscription(id) => id,
        }
    }

    pub(crate) fn decode(kind: &str, id: i64) -> Option<Resource> {
        match kind {
            "invoice" => Some(Resource::Invoice(id)),
            "refund" => Some(Resource::Refund(id)),
            "subscription" => Some(Resource::Subscription(id)),
            _ => None,
        }
    }
}

/// A fresh marker for a Kaspi comment: 12 hex digits of a random UUID.
pub fn new_kaspi_ref() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// The comment Kaspi gets for an invoice: the merchant's description, then the marker
/// `[kassa:<ref>]` by which the operation is found in Kaspi's histories even when the answer
/// to the create was lost.
pub fn kaspi_comment(description: Option<&str>, kaspi_ref: &str) -> String {
    match description.map(str::trim_end) {
        Some(text) if !text.is_empty() => format!("{text} [kassa:{kaspi_ref}]"),
        _ => format!("[kassa:{kaspi_ref}]"),
    }
}

/// The marker of a Kaspi comment made by [`kaspi_comment`], if it has one.
pub fn kaspi_ref_of(comment: &str) -> Option<&str> {
    let start = comment.rfind("[kassa:")? + "[kassa:".len();
    let rest = &comment[start..];
    let end = rest.find(']')?;
    let marker = &rest[..end];
    (marker.len() == 12 && marker.bytes().all(|b| b.is_ascii_hexdigit())).then_some(marker)
}

/// What Kaspi answered when it accepted an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceSent {
    pub kaspi_operation_id: KaspiOperationId,
    pub kaspi_status: Option<String>,
    pub client_name: Option<String>,
    pub at_ms: i64,
    /// When the first status poll is due.
    pub poll_at_ms: i64,
    /// For QR invoices: the token URL and Kaspi's transaction id.
    pub qr_token: Option<String>,
    pub ext_tran_id: Option<String>,
    /// When Kaspi says the invoice or token expires, if it says.
    pub expires_at: Option<i64>,
}

/// Columns [`InvoiceFilter`] can sort by; anything else is not expressible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InvoiceSort {
    Id,
    Amount,
    ClientName,
    Status,
    #[default]
    CreatedAt,
}

impl InvoiceSort {
    /// Parses the API's `sort_by` value.
    pub fn parse(text: &str) -> Option<InvoiceSort> {
        Some(match text {
            "id" => InvoiceSort::Id,
            "amount" => InvoiceSort::Amount,
            "client_name" => InvoiceSort::ClientName,
            "status" => InvoiceSort::Status,
            "created_at" => InvoiceSort::CreatedAt,
            _ => return None,
        })
    }

    pub(crate) fn column(self) -> &'static str {
        match self {
            InvoiceSort::Id => "id",
            InvoiceSort::Amount => "amount",
            InvoiceSort::ClientName => "client_name",
            InvoiceSort::Status => "status",
            InvoiceSort::CreatedAt => "created_at",
        }
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    Asc,
    #[default]
    Desc,
}

impl SortOrder {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            SortOrder::Asc => "ASC",
            SortOrder::Desc => "DESC",
        }
    }
}

/// A page of an organization's invoices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceFilter {
    /// From 1.
    pub page: u32,
    /// Clamped to 1..=100.
    pub per_page: u32,
    /// Matches description, external order id or phone (substring), or the id when numeric.
    pub search: Option<String>,
    /// Empty means any status.
    pub statuses: Vec<InvoiceStatus>,
    /// Exactly this phone (10 digits).
    pub phone: Option<String>,
    /// Exactly this order id.
    pub external_order_id: Option<String>,
    /// Inclusive, unix ms.
    pub created_from: Option<i64>,
    /// Exclusive, unix ms.
    pub created_to: Option<i64>,
    pub sort_by: InvoiceSort,
    pub sort_order: SortOrder,
}

impl Default for InvoiceFilter {
    fn default() -> InvoiceFilter {
        InvoiceFilter {
            page: 1,
            per_page: 10,
            search: None,
            statuses: Vec::new(),
            phone: None,
            external_order_id: None,
            created_from: None,
            created_to: None,
            sort_by: InvoiceSort::default(),
            sort_order: SortOrder::default(),
        }
    }
}

impl InvoiceFilter {
    /// Whether the filter names no text (search, phone, order id): only statuses and creation
    /// dates, which the kept counts answer.
    pub fn search_free(&self) -> bool {
        self.search.as_deref().is_none_or(|s| s.trim().is_empty())
            && self.phone.is_none()
            && self.external_order_id.is_none()
    }
}

/// Counts and sums of one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusTotals {
    pub status: InvoiceStatus,
    pub count: i64,
    /// Sum of amounts, in tiyn.
    pub amount: i64,
    /// Sum of refunds, in tiyn.
    pub refunded: i64,
}

/// Invoice totals of a period, one entry per status (zeroes included), in [`InvoiceStatus::ALL`]
/// order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceStats {
    pub by_status: Vec<StatusTotals>,
}

impl InvoiceStats {
    /// The totals of `status`.
    pub fn of(&self, status: InvoiceStatus) -> StatusTotals {
        self.by_status
            .iter()
            .copied()
            .find(|t| t.status == status)
            .unwrap_or(StatusTotals {
                status,
                count: 0,
                amount: 0,
                refunded: 0,
            })
    }
}

/// A leased job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: i64,
    pub kind: JobKind,
    /// The row the job is about (an invoice id for the invoice jobs).
    pub ref_id: i64,
    pub run_at: i64,
    /// How many times it was rescheduled after an attempt.
    pub attempt: i64,
    pub locked_until: Option<i64>,
    pub locked_by: Option<String>,
    pub last_error: Option<String>,
    pub created_at: i64,
}

/// What [`crate::store::OrgRepo::idempotency_begin`](super::OrgRepo::idempotency_begin) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// First time: the key is now recorded as running; do the work, then finish or abandon it.
    New,
    /// Done before with the same request: answer this again.
    Replay { status: u16, body: Vec<u8> },
    /// The key was used with a different request.
    Mismatch,
    /// The same request is still running elsewhere.
    InFlight,
    /// The first run's process died after it made `Resource` (its lease ran out): the record
    /// is now this request's; answer from the resource, never make it again.
    Recover(Resource),
}

#[cfg(test)]
mod marker_tests {
    use super::{kaspi_comment, kaspi_ref_of, new_kaspi_ref};

    #[test]
    fn a_comment_carries_its_marker_and_gives_it_back() {
        let marker = new_kaspi_ref();
        assert_eq!(marker.len(), 12);
        let comment = kaspi_comment(Some("Order #1 "), &marker);
        assert_eq!(comment, format!("Order #1 [kassa:{marker}]"));
        assert_eq!(kaspi_ref_of(&comment), Some(marker.as_str()));
        assert_eq!(kaspi_comment(None, "0123456789ab"), "[kassa:0123456789ab]");
        assert_eq!(
            kaspi_comment(Some("  "), "0123456789ab"),
            "[kassa:0123456789ab]"
        );
        // Only a whole marker counts; the last one wins.
        assert_eq!(kaspi_ref_of("Order [kassa:0123]"), None);
        assert_eq!(kaspi_ref_of("Order [kassa:0123456789zz]"), None);
        assert_eq!(kaspi_ref_of("Order [kassa:0123456789ab"), None);
        assert_eq!(kaspi_ref_of("no marker"), None);
        assert_eq!(
            kaspi_ref_of("[kassa:aaaaaaaaaaaa] quoted [kassa:0123456789ab]"),
            Some("0123456789ab")
        );
    }
}
