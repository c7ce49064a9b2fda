//! Everything the simulator remembers, in memory behind one mutex: the seeded generator,
//! the sim clock, cashiers, login processes, sessions, operations, faults and rate windows.
//!
//! The types here are plain data; the rules that change them live in `ops` (payments),
//! `entrance` (login), `auth` (request checks) and `faults`. What a restart must keep
//! (operations, sessions, cashiers, ids, the generator and the clock) derives serde, with the
//! adapters of `persist` for the types that have no serde of their own; `persist` owns the file.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use kaspi::sign::VerifyKey;
use kaspi::{Amount, Phone, Status};
use p256::PublicKey;
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha12Rng;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::faults::Faults;
use crate::people::CashierProfile;
use crate::persist::serde_as;
use crate::{Challenge, SimConfig};

/// The simulator's whole memory.
pub(crate) struct State {
    pub cfg: SimConfig,
    /// `StdRng`'s algorithm under its own name, whose state serde can save, so a restarted
    /// simulator goes on with the same sequence.
    pub rng: ChaCha12Rng,
    pub clock: Clock,
    /// Cashiers set up through the control API; other phones use the defaults.
    pub cashiers: HashMap<String, CashierSetup>,
    /// Login processes by `pId`.
    pub processes: HashMap<String, LoginProcess>,
    /// The last SMS code sent to each phone.
    pub sms: HashMap<String, String>,
    /// Sessions by `token_sn`.
    pub sessions: HashMap<String, Session>,
    /// Operations by id, each behind an `Arc`: a save copies the map (counts, not
    /// operations) under the lock, and a change copies only an operation a save still holds.
    pub ops: BTreeMap<u64, Arc<Operation>>,
    /// Due time-driven changes: (due unix ms, operation id).
    pub agenda: BTreeSet<(i64, u64)>,
    /// The next operation id (11 digits).
    pub next_id: u64,
    /// The latest `TransactionDate` handed out: stamps only grow, so no two changes share one.
    pub last_tx: i64,
    pub faults: Faults,
    /// Recent qrpay/mtoken calls per cashier phone (rate limit window).
    pub rate: HashMap<String, VecDeque<Instant>>,
    /// The cashier who logged in last (the default merchant of static QR payments).
    pub last_login: Option<Phone>,
    /// Something a restart must keep changed since the state was last saved ([`State::touch`]).
    pub changed: bool,
    /// The lowest app build Kaspi accepts (`X-App-Bld`, `appBuild`); `None`: any. Saved.
    pub min_app_build: Option<u64>,
    /// Cashier phones whose account is blocked, until this unix ms of the sim clock. Saved.
    pub blocked_until: HashMap<String, i64>,
    /// A login error code the next login of a cashier phone answers at its phone step (once).
    /// A test's script, like the faults: not saved.
    pub login_refusals: HashMap<String, String>,
}

impl State {
    pub(crate) fn new(cfg: SimConfig) -> Self {
        let mut rng = ChaCha12Rng::seed_from_u64(cfg.seed);
        let next_id = rng.gen_range(14_000_000_000..15_000_000_000);
        Self {
            cfg,
            rng,
            clock: Clock::default(),
            cashiers: HashMap::new(),
            processes: HashMap::new(),
            sms: HashMap::new(),
            sessions: HashMap::new(),
            ops: BTreeMap::new(),
            agenda: BTreeSet::new(),
            next_id,
            last_tx: i64::MIN,
            faults: Faults::default(),
            rate: HashMap::new(),
            last_login: None,
            changed: false,
            min_app_build: None,
            blocked_until: HashMap::new(),
            login_refusals: HashMap::new(),
        }
    }

    /// Marks the state as changed in a way a restart must keep (the saver writes it soon).
    pub(crate) fn touch(&mut self) {
        self.changed = true;
    }

    /// A fresh 11-digit id (operations, sales): increasing, with random gaps.
    pub(crate) fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += self.rng.gen_range(1..=37);
        id
    }

    /// `n` random decimal digits.
    pub(crate) fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|i| {
                let low = u8::from(i == 0);
                char::from(b'0' + self.rng.gen_range(low..10))
            })
            .collect()
    }

    /// A random token of upper-case hex.
    pub(crate) fn hex_token(&mut self, bytes: usize) -> String {
        let raw: Vec<u8> = (0..bytes).map(|_| self.rng.gen()).collect();
        hex::encode_upper(raw)
    }

    /// A `TransactionDate` at `at_ms` that no other change has: 1 ms after the latest one
    /// when that is not earlier (many changes in one millisecond).
    pub(crate) fn stamp(&mut self, at_ms: i64) -> i64 {
        let t = at_ms.max(self.last_tx.saturating_add(1));
        self.last_tx = t;
        t
    }

    /// The profile and organization a cashier phone logs in to: its own generated one, in the
    /// organization of the phone named by `organization_of` when it was added to one (as Kaspi
    /// lets an organization add cashiers).
    pub(crate) fn profile_of(&self, phone: &Phone) -> CashierProfile {
        let mut profile = crate::people::cashier_profile(self.cfg.seed, phone);
        let owner = self
            .cashiers
            .get(phone.as_str())
            .and_then(|setup| setup.organization_of.as_deref())
            .and_then(|owner| kaspi::phone::normalize(owner).ok());
        if let Some(owner) = owner {
            let org = crate::people::cashier_profile(self.cfg.seed, &owner);
            profile.organization_id = org.organization_id;
            profile.organization_name = org.organization_name;
            profile.organization_idn = org.organization_idn;
            profile.organization_kbe = org.organization_kbe;
        }
        profile
    }

    /// The login challenge and password of a cashier.
    pub(crate) fn setup_of(&self, phone: &Phone) -> CashierSetup {
        self.cashiers
            .get(phone.as_str())
            .cloned()
            .unwrap_or(CashierSetup {
                challenge: self.cfg.login_challenge,
                password: crate::DEFAULT_PASSWORD.to_owned(),
                organization_of: None,
            })
    }
}

/// How a cashier logs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CashierSetup {
    pub challenge: Challenge,
    pub password: String,
    /// A cashier added to the organization of this (owner's) phone; `None`: the cashier has
    /// an organization of its own. Absent in state files written before it was kept.
    #[serde(default)]
    pub organization_of: Option<String>,
}

/// Where a login process stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoginStage {
    /// Started; the phone number is expected.
    Started,
    /// The password is expected.
    Password,
    /// The SMS code is expected.
    Otp,
    /// Waiting for the cashier to confirm in the app.
    App { confirmed: bool },
    /// Verified: `finish` may register the device.
    Verified,
    /// Closed (too many wrong answers, or finished).
    Closed,
}

/// One login (entrance) process.
#[derive(Debug, Clone)]
pub(crate) struct LoginProcess {
    pub user_token: String,
    /// The device key from the `pk` cookie, with its `pk` and `pkTag` strings.
    pub device_key: VerifyKey,
    pub pk_tag: String,
    pub install_id: String,
    pub phone: Option<Phone>,
    pub stage: LoginStage,
    pub wrong_answers: u32,
    /// The `meta.sn` of the step the process waits for.
    pub step_name: &'static str,
}

/// Whether a session may still be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum SessionState {
    Live,
    /// Expired (control API) or replaced by sign-in-lite: refresh works.
    Expired,
    /// Revoked (control API): a new SMS login is needed.
    Revoked,
    /// Ended by a login of the same phone on another device (qrpay `StatusCode` -101001):
    /// a new login is needed, refresh does not help.
    Evicted,
}

/// A session made by `finish` or sign-in-lite. Its secret is saved with the state (a file
/// only its owner reads) and never logged.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Session {
    pub token_sn: String,
    #[serde(with = "serde_as::hex32")]
    pub vtoken_secret: [u8; 32],
    /// The device signing key registered at login.
    #[serde(with = "serde_as::verify_key")]
    pub device_key: VerifyKey,
    /// The client's ECDH key from `finish` (`guard.x509`), reused by sign-in-lite.
    #[serde(with = "serde_as::public_key")]
    pub client_ecdh: PublicKey,
    #[serde(with = "serde_as::phone")]
    pub phone: Phone,
    pub profile: CashierProfile,
    pub state: SessionState,
    /// The `installId` of the device that logged in (a login from another one evicts this).
    /// Empty in a state file written before it was kept.
    #[serde(default)]
    pub install_id: String,
}

/// How an operation came to be (`SaleType` in the history).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum SaleType {
    /// A remote invoice (payment by phone).
    Remote,
    /// A QR token (payment link).
    Link,
    /// A payment to the merchant's static QR, without an invoice.
    Static,
    /// A refund of another operation.
    Return,
}

impl SaleType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SaleType::Remote => "Remote",
            SaleType::Link => "Link",
            SaleType::Static => "Static",
            SaleType::Return => "Return",
        }
    }
}

/// A change a scripted payer will make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Scripted {
    Pay,
    Decline,
    NoFunds,
}

/// One operation: invoice, QR token, static QR payment or refund. Amounts are saved as
/// whole tiyn.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Operation {
    pub id: u64,
    pub sale_id: u64,
    pub organization_id: u64,
    pub sale: SaleType,
    #[serde(with = "serde_as::tiyn")]
    pub amount: Amount,
    pub comment: String,
    #[serde(with = "serde_as::opt_phone")]
    pub client_phone: Option<Phone>,
    pub client_name: Option<String>,
    #[serde(with = "serde_as::status")]
    pub status: Status,
    pub status_desc: String,
    pub created_ms: i64,
    /// `TransactionDate`: the time of the last status change (unique).
    pub tx_ms: i64,
    pub paid_ms: Option<i64>,
    pub expires_ms: Option<i64>,
    /// What the scripted payer does, and when.
    pub script: Option<(i64, Scripted)>,
    /// Sum of the refunds made of this operation.
    #[serde(with = "serde_as::tiyn")]
    pub returned: Amount,
    /// The refunded operation (refunds only).
    pub parent: Option<u64>,
    /// `QrToken` of a payment link.
    pub qr_token: Option<String>,
    /// The phone of the cashier whose call made it (none for static QR payments and
    /// operations made through the control API). Absent in state files written before it was
    /// kept.
    #[serde(default)]
    pub cashier: Option<String>,
}

impl Operation {
    /// Still waiting for the payer.
    pub(crate) fn is_open(&self) -> bool {
        !self.status.outcome().is_final()
    }

    /// The earliest time-driven change still ahead of an open operation.
    pub(crate) fn next_due(&self) -> Option<i64> {
        if !self.is_open() {
            return None;
        }
        let script = self.script.map(|(at, _)| at);
        match (script, self.expires_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// What may still be refunded.
    pub(crate) fn available_return(&self) -> Amount {
        if self.status != Status::Processed || self.sale == SaleType::Return {
            return Amount::ZERO;
        }
        self.amount
            .checked_sub(self.returned)
            .unwrap_or(Amount::ZERO)
    }
}
