//! The catalog's units of measure and a cart's arithmetic: the exact sum of its lines in tiyn,
//! and a discount in whole percent.
//!
//! Rounding, once: the discount is `subtotal × percent / 100` rounded half up to a whole tiyn;
//! the amount is the subtotal less the discount. The discount is shared among the lines in
//! proportion to their totals (largest remainder), so the lines' shares add up to it exactly.

use super::Money;

/// A unit of measure: Kaspi's names in Russian and Kazakh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unit {
    pub id: i64,
    pub name: &'static str,
    pub name_kaz: &'static str,
}

/// The units a catalog item may have (`GET /catalog/units`). Id 1 is the piece, as ApiPay's
/// docs show it; Kaspi's own ids for the others are not public, so these are Kassa's.
pub const UNITS: &[Unit] = &[
    Unit {
        id: 1,
        name: "штука",
        name_kaz: "дана",
    },
    Unit {
        id: 2,
        name: "килограмм",
        name_kaz: "килограмм",
    },
    Unit {
        id: 3,
        name: "грамм",
        name_kaz: "грамм",
    },
    Unit {
        id: 4,
        name: "литр",
        name_kaz: "литр",
    },
    Unit {
        id: 5,
        name: "миллилитр",
        name_kaz: "миллилитр",
    },
    Unit {
        id: 6,
        name: "метр",
        name_kaz: "метр",
    },
    Unit {
        id: 7,
        name: "сантиметр",
        name_kaz: "сантиметр",
    },
    Unit {
        id: 8,
        name: "квадратный метр",
        name_kaz: "шаршы метр",
    },
    Unit {
        id: 9,
        name: "услуга",
        name_kaz: "қызмет",
    },
    Unit {
        id: 10,
        name: "упаковка",
        name_kaz: "қаптама",
    },
    Unit {
        id: 11,
        name: "пара",
        name_kaz: "жұп",
    },
    Unit {
        id: 12,
        name: "комплект",
        name_kaz: "жиынтық",
    },
    Unit {
        id: 13,
        name: "час",
        name_kaz: "сағат",
    },
];

/// The unit `id`, if there is one.
pub fn unit(id: i64) -> Option<&'static Unit> {
    UNITS.iter().find(|u| u.id == id)
}

/// What a cart comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartTotals {
    /// The sum of price × count over the lines.
    pub subtotal: Money,
    /// The discount, rounded half up to a whole tiyn (zero without one).
    pub discount_sum: Money,
    /// What the payer pays: the subtotal less the discount.
    pub amount: Money,
    /// Each line's share of the discount, in the lines' order.
    pub line_discounts: Vec<Money>,
}

/// Why a cart cannot be priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CartError {
    Empty,
    /// The sum does not fit in money (more than i64 tiyn).
    TooLarge,
}

/// The totals of lines `(price, count)` with an optional discount of `percent` (1–99).
pub fn cart_totals(lines: &[(Money, i64)], percent: Option<u8>) -> Result<CartTotals, CartError> {
    if lines.is_empty() {
        return Err(CartError::Empty);
    }
    let mut totals = Vec::with_capacity(lines.len());
    let mut subtotal: i64 = 0;
    for (price, count) in lines {
        let line = price
            .tiyn()
            .checked_mul(*count)
            .ok_or(CartError::TooLarge)?;
        subtotal = subtotal.checked_add(line).ok_or(CartError::TooLarge)?;
        totals.push(line);
    }
    let percent = i128::from(percent.unwrap_or(0));
    let discount = i64::try_from((i128::from(subtotal) * percent * 2 + 100) / 200)
        .map_err(|_| CartError::TooLarge)?;
    // Shares in proportion to the lines' totals; what the floors leave goes to the lines with
    // the largest remainders (the first such line on a tie).
    let mut shares: Vec<i64> = Vec::with_capacity(totals.len());
    let mut remainders: Vec<(i128, usize)> = Vec::with_capacity(totals.len());
    for (i, line) in totals.iter().enumerate() {
        let exact = i128::from(discount) * i128::from(*line);
        let whole = if subtotal == 0 {
            0
        } else {
            exact / i128::from(subtotal)
        };
        let rest = if subtotal == 0 {
            0
        } else {
            exact % i128::from(subtotal)
        };
        shares.push(i64::try_from(whole).map_err(|_| CartError::TooLarge)?);
        remainders.push((rest, i));
    }
    let mut left = discount - shares.iter().sum::<i64>();
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in remainders {
        if left <= 0 {
            break;
        }
        shares[i] += 1;
        left -= 1;
    }
    Ok(CartTotals {
        subtotal: Money::from_tiyn(subtotal),
        discount_sum: Money::from_tiyn(discount),
        amount: Money::from_tiyn(subtotal - discount),
        line_discounts: shares.into_iter().map(Money::from_tiyn).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kzt(tenge: i64) -> Money {
        Money::from_tiyn(tenge * 100)
    }

    #[test]
    fn the_seed_example_comes_to_4500() {
        let totals = cart_totals(&[(kzt(1500), 2), (kzt(500), 3)], None).expect("priced");
        assert_eq!(totals.amount, kzt(4500));
        assert_eq!(totals.discount_sum, Money::ZERO);
        assert_eq!(totals.line_discounts, [Money::ZERO, Money::ZERO]);
    }

    #[test]
    fn a_discount_rounds_half_up_once_and_its_shares_add_up() {
        // 3 × 33.33 = 99.99; 10 % = 9.999 → 10.00.
        let totals = cart_totals(&[(Money::from_tiyn(3333), 3)], Some(10)).expect("priced");
        assert_eq!(totals.subtotal, Money::from_tiyn(9999));
        assert_eq!(totals.discount_sum, Money::from_tiyn(1000));
        assert_eq!(totals.amount, Money::from_tiyn(8999));
        // Three equal lines share 1.00 tiyn-exactly: 34 + 33 + 33.
        let totals = cart_totals(
            &[
                (Money::from_tiyn(100), 1),
                (Money::from_tiyn(100), 1),
                (Money::from_tiyn(100), 1),
            ],
            Some(1),
        )
        .expect("priced");
        assert_eq!(totals.discount_sum, Money::from_tiyn(3));
        let shares: i64 = totals.line_discounts.iter().map(|m| m.tiyn()).sum();
        assert_eq!(shares, 3);
        let totals = cart_totals(&[(kzt(1000), 7), (kzt(333), 1)], Some(15)).expect("priced");
        let shares: i64 = totals.line_discounts.iter().map(|m| m.tiyn()).sum();
        assert_eq!(shares, totals.discount_sum.tiyn());
        assert_eq!(
            totals.amount.tiyn() + totals.discount_sum.tiyn(),
            totals.subtotal.tiyn()
        );
    }

    #[test]
    fn an_empty_or_overflowing_cart_is_refused() {
        assert_eq!(cart_totals(&[], None), Err(CartError::Empty));
        assert_eq!(
            cart_totals(&[(Money::from_tiyn(i64::MAX / 2), 3)], None),
            Err(CartError::TooLarge)
        );
        assert_eq!(unit(1).map(|u| u.name_kaz), Some("дана"));
        assert!(unit(0).is_none());
    }
}
