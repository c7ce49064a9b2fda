//! Who is on the other side: scripted payers (the magic phone numbers), deterministic
//! client names, and the cashier profiles and organizations login hands out.
//!
//! Everything here is a pure function of the seed and a phone number, so a name or an
//! organization id never depends on the order in which tests run.

use std::time::Duration;

use kaspi::sign::md5_hex;
use kaspi::Phone;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng as _};
use serde::{Deserialize, Serialize};

/// What the owner of a phone number does with a remote invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Payer {
    /// `700111NNNN`: pays NNNN seconds (sim clock) after the invoice is created.
    PaysAfter(Duration),
    /// `700222NNNN`: declines (`RemotePaymentRejected`) after NNNN seconds.
    DeclinesAfter(Duration),
    /// `700333NNNN`: tries to pay after NNNN seconds and has not enough money
    /// (`RemotePaymentRejected`, `StatusDesc` "Недостаточно средств").
    NoFundsAfter(Duration),
    /// `700444xxxx`: never pays; the invoice expires at `invoice_ttl`.
    NeverPays,
    /// `700555xxxx`: not a Kaspi client; invoices to it are refused.
    NotClient,
    /// Anyone else: a Kaspi client who waits for the control API.
    Ordinary,
}

/// The script of a phone number (the table in the crate README).
pub(crate) fn payer(phone: &Phone) -> Payer {
    let digits = phone.as_str();
    let (prefix, tail) = digits.split_at(6);
    let after = || Duration::from_secs(tail.parse::<u64>().unwrap_or(0));
    match prefix {
        "700111" => Payer::PaysAfter(after()),
        "700222" => Payer::DeclinesAfter(after()),
        "700333" => Payer::NoFundsAfter(after()),
        "700444" => Payer::NeverPays,
        "700555" => Payer::NotClient,
        _ => Payer::Ordinary,
    }
}

/// A generator seeded by the sim seed, a purpose and a key (stable across runs and versions).
pub(crate) fn seeded(seed: u64, purpose: &str, key: &str) -> StdRng {
    let digest = md5_hex(&format!("{seed}:{purpose}:{key}"));
    let n = u64::from_str_radix(&digest[..16], 16).unwrap_or(seed);
    StdRng::seed_from_u64(n)
}

const FIRST_NAMES: &[&str] = &[
    "Рустем",
    "Айгерим",
    "Данияр",
    "Асель",
    "Ерлан",
    "Мадина",
    "Нурлан",
    "Жанна",
    "Тимур",
    "Алия",
    "Серик",
    "Камила",
    "Арман",
    "Дина",
    "Бауыржан",
    "Салтанат",
    "Ержан",
    "Гульнара",
    "Азамат",
    "Томирис",
];
const INITIALS: &[&str] = &["А", "Б", "Д", "Е", "Ж", "И", "К", "М", "Н", "О", "С", "Т"];
const SURNAMES: &[&str] = &[
    "Ахметов",
    "Жумабаев",
    "Касымов",
    "Нурланов",
    "Сериков",
    "Токтаров",
    "Ержанов",
    "Бекова",
];
const SHOP_WORDS: &[&str] = &[
    "Алма",
    "Дала",
    "Самал",
    "Береке",
    "Шанырак",
    "Достык",
    "Тулпар",
    "Нур",
];
const SHOP_KINDS: &[&str] = &["Маркет", "Кофе", "Сервис", "Трейд", "Фуд", "Строй"];

fn pick<'a>(rng: &mut impl Rng, list: &[&'a str]) -> &'a str {
    list[rng.gen_range(0..list.len())]
}

/// A short client name as Kaspi shows it (`Рустем Е.`), stable for a phone.
pub(crate) fn client_name(seed: u64, phone: &Phone) -> String {
    let mut rng = seeded(seed, "client", phone.as_str());
    format!(
        "{} {}.",
        pick(&mut rng, FIRST_NAMES),
        pick(&mut rng, INITIALS)
    )
}

/// A short name for a payer with no phone (QR payments), drawn from the sim's generator.
pub(crate) fn random_client_name(rng: &mut impl Rng) -> String {
    format!("{} {}.", pick(rng, FIRST_NAMES), pick(rng, INITIALS))
}

/// A cashier's profile and organization, as org-context answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CashierProfile {
    pub phone: String,
    pub user_id: u64,
    pub profile_id: u64,
    pub emp_id: u64,
    pub organization_id: u64,
    pub organization_name: String,
    /// The organization's IDN (БИН/ИИН), 12 digits.
    pub organization_idn: String,
    pub organization_kbe: String,
    pub access_level_type: i32,
    pub is_cashier: bool,
}

/// The generated profile of a cashier phone: every cashier has its own organization.
pub(crate) fn cashier_profile(seed: u64, phone: &Phone) -> CashierProfile {
    let mut rng = seeded(seed, "cashier", phone.as_str());
    let individual = rng.gen_bool(0.5);
    let organization_name = if individual {
        format!(
            "ИП {} {}.",
            pick(&mut rng, SURNAMES),
            pick(&mut rng, INITIALS)
        )
    } else {
        format!(
            "ТОО «{} {}»",
            pick(&mut rng, SHOP_WORDS),
            pick(&mut rng, SHOP_KINDS)
        )
    };
    CashierProfile {
        phone: phone.as_str().to_owned(),
        user_id: rng.gen_range(10_000_000..100_000_000),
        profile_id: rng.gen_range(10_000_000..100_000_000),
        emp_id: rng.gen_range(1_000_000..10_000_000),
        organization_id: rng.gen_range(1_000_000..10_000_000),
        organization_name,
        organization_idn: format!(
            "{:012}",
            rng.gen_range(100_000_000_000u64..1_000_000_000_000)
        ),
        organization_kbe: if individual { "19" } else { "17" }.to_owned(),
        access_level_type: 1,
        is_cashier: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(s: &str) -> Phone {
        kaspi::phone::normalize(s).expect("valid phone")
    }

    #[test]
    fn magic_numbers_are_read_from_the_prefix() {
        assert_eq!(
            payer(&phone("7001110005")),
            Payer::PaysAfter(Duration::from_secs(5))
        );
        assert_eq!(
            payer(&phone("87002220120")),
            Payer::DeclinesAfter(Duration::from_secs(120))
        );
        assert_eq!(
            payer(&phone("+7 700 333 0000")),
            Payer::NoFundsAfter(Duration::ZERO)
        );
        assert_eq!(payer(&phone("7004441234")), Payer::NeverPays);
        assert_eq!(payer(&phone("7005550000")), Payer::NotClient);
        assert_eq!(payer(&phone("7001234567")), Payer::Ordinary);
    }

    #[test]
    fn names_and_profiles_depend_on_seed_and_phone_only() {
        let p = phone("7001234567");
        assert_eq!(client_name(42, &p), client_name(42, &p));
        assert!(client_name(42, &p).ends_with('.'));
        let a = cashier_profile(42, &p);
        assert_eq!(a, cashier_profile(42, &p));
        assert_ne!(a, cashier_profile(43, &p));
        assert_ne!(
            a.organization_id,
            cashier_profile(42, &phone("7007654321")).organization_id
        );
        assert_eq!(a.organization_idn.len(), 12);
    }
}
