//! Every label of the dashboard in Russian (the default) and English. Each page module keeps
//! its own words (`WORDS`: key, Russian, English); a key used by a template and missing here
//! fails the page's rendering, so a test that opens the page finds it.

use std::collections::HashMap;
use std::sync::OnceLock;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A page's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    Ru,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ru => "ru",
            Lang::En => "en",
        }
    }

    pub fn other(self) -> Lang {
        match self {
            Lang::Ru => Lang::En,
            Lang::En => Lang::Ru,
        }
    }

    /// The language a `kassa_lang` cookie value names; Russian otherwise.
    pub fn from_cookie(value: Option<&str>) -> Lang {
        match value {
            Some("en") => Lang::En,
            _ => Lang::Ru,
        }
    }
}

/// Words of the whole dashboard: what every page shows (navigation, errors, statuses).
const COMMON: &[(&str, &str, &str)] = &[
    ("app.title", "Касса", "Kassa"),
    ("nav.overview", "Обзор", "Overview"),
    ("nav.invoices", "Счета", "Invoices"),
    ("nav.subscriptions", "Подписки", "Subscriptions"),
    ("nav.catalog", "Каталог", "Catalog"),
    ("nav.webhooks", "Вебхуки", "Webhooks"),
    ("nav.keys", "API-ключи", "API keys"),
    ("nav.cashier", "Кассир", "Cashier"),
    ("nav.sandbox", "Песочница", "Sandbox"),
    ("nav.team", "Команда", "Team"),
    ("nav.audit", "Журнал", "Audit log"),
    ("nav.logout", "Выйти", "Sign out"),
    ("nav.lang", "English", "Русский"),
    ("nav.menu", "Меню", "Menu"),
    ("role.owner", "владелец", "owner"),
    ("role.admin", "администратор", "admin"),
    ("role.developer", "разработчик", "developer"),
    ("role.operator", "оператор", "operator"),
    ("role.viewer", "наблюдатель", "viewer"),
    ("action.view", "просмотр", "reading"),
    (
        "action.own_account",
        "своя учётная запись",
        "your own account",
    ),
    (
        "action.create_invoice",
        "создание счетов",
        "creating invoices",
    ),
    (
        "action.cancel_invoice",
        "отмена счетов",
        "cancelling invoices",
    ),
    ("action.refund_invoice", "возвраты", "refunds"),
    ("action.manage_webhooks", "вебхуки", "webhooks"),
    ("action.manage_api_keys", "API-ключи", "API keys"),
    ("action.manage_subscriptions", "подписки", "subscriptions"),
    ("action.manage_catalog", "каталог", "the catalog"),
    (
        "action.manage_cashier",
        "подключение кассира",
        "connecting the cashier",
    ),
    (
        "action.use_sandbox",
        "инструменты песочницы",
        "the sandbox's tools",
    ),
    ("action.manage_team", "команда", "the team"),
    (
        "action.set_security_policy",
        "правила входа организации",
        "the organization's sign-in policy",
    ),
    (
        "forbidden.why",
        "Ваша роль не позволяет это действие",
        "Your role does not allow this",
    ),
    (
        "forbidden.nothing",
        "Ничего не изменено.",
        "Nothing was changed.",
    ),
    (
        "viewer.note",
        "Вы наблюдатель: изменения недоступны.",
        "You are a viewer: changes are not available.",
    ),
    (
        "banner.cashier",
        "Сессия кассира Kaspi не работает — нужен повторный вход.",
        "The Kaspi cashier session is not working: the cashier must sign in again.",
    ),
    ("banner.fix", "Подключить кассира", "Reconnect the cashier"),
    ("sandbox.badge", "песочница", "sandbox"),
    ("error.not_found", "Не найдено", "Not found"),
    (
        "error.forbidden",
        "Недостаточно прав для этого действия",
        "You may not do this",
    ),
    (
        "error.csrf",
        "Форма устарела или отправлена не из панели. Обновите страницу и повторите.",
        "The form is stale or was not sent from the dashboard. Reload the page and try again.",
    ),
    (
        "error.internal",
        "Внутренняя ошибка. Подробности в журнале сервера.",
        "Internal error. The server's log has the details.",
    ),
    (
        "error.form",
        "Проверьте поля формы.",
        "Please check the form's fields.",
    ),
    ("status.pending", "ожидает оплаты", "pending"),
    ("status.processing", "отправляется", "processing"),
    ("status.paid", "оплачен", "paid"),
    ("status.cancelled", "отменён", "cancelled"),
    ("status.expired", "истёк", "expired"),
    ("status.error", "ошибка", "error"),
    (
        "status.partially_refunded",
        "частично возвращён",
        "partially refunded",
    ),
    ("status.refunded", "возвращён", "refunded"),
    ("status.completed", "выполнен", "completed"),
    ("status.failed", "не выполнен", "failed"),
    ("status.active", "активна", "active"),
    ("status.paused", "приостановлена", "paused"),
    ("status.grace", "льготный период", "grace period"),
    (
        "status.suspended",
        "приостановлена за неоплату",
        "suspended",
    ),
    ("status.delivered", "доставлено", "delivered"),
    ("status.retrying", "повтор", "retrying"),
    ("status.dead", "не доставлено", "gave up"),
    ("common.save", "Сохранить", "Save"),
    ("common.create", "Создать", "Create"),
    ("common.delete", "Удалить", "Delete"),
    ("common.cancel", "Отменить", "Cancel"),
    ("common.back", "Назад", "Back"),
    ("common.search", "Найти", "Search"),
    ("common.yes", "да", "yes"),
    ("common.no", "нет", "no"),
    ("common.none", "—", "—"),
    ("common.prev", "← Назад", "← Previous"),
    ("common.next", "Вперёд →", "Next →"),
    ("common.page", "Страница", "Page"),
    ("common.of", "из", "of"),
    ("common.total", "Всего", "Total"),
    ("common.created_at", "Создан", "Created"),
    ("common.status", "Статус", "Status"),
    ("common.amount", "Сумма", "Amount"),
    ("common.description", "Описание", "Description"),
    ("common.phone", "Телефон", "Phone"),
    ("common.actions", "Действия", "Actions"),
    ("common.empty", "Пока пусто.", "Nothing here yet."),
    ("common.confirm", "Вы уверены?", "Are you sure?"),
    (
        "common.shown_once",
        "Показывается один раз — сохраните сейчас.",
        "Shown only this once: keep it now.",
    ),
    ("common.done", "Готово.", "Done."),
];

/// Every module's words.
const ALL: &[&[(&str, &str, &str)]] = &[
    COMMON,
    super::auth::WORDS,
    super::overview::WORDS,
    super::invoices::WORDS,
    super::subscriptions::WORDS,
    super::catalog::WORDS,
    super::webhooks::WORDS,
    super::keys::WORDS,
    super::two_factor::WORDS,
    super::cashier::WORDS,
    super::sandbox::WORDS,
    super::mode::WORDS,
    super::team::WORDS,
    super::audit::WORDS,
];

fn table() -> &'static HashMap<&'static str, (&'static str, &'static str)> {
    static TABLE: OnceLock<HashMap<&'static str, (&'static str, &'static str)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        ALL.iter()
            .flat_map(|words| words.iter())
            .map(|(key, ru, en)| (*key, (*ru, *en)))
            .collect()
    })
}

/// The label `key` in `lang`.
pub(crate) fn word(lang: Lang, key: &str) -> Option<&'static str> {
    table().get(key).map(|(ru, en)| match lang {
        Lang::Ru => *ru,
        Lang::En => *en,
    })
}

/// An amount as the API writes it (`"10000.50"`) written for people: `10 000,50 ₸` in Russian,
/// `10,000.50 ₸` in English. Anything else is shown as it is.
pub(crate) fn money(lang: Lang, text: &str) -> String {
    let (whole, cents) = text.split_once('.').unwrap_or((text, "00"));
    let (sign, digits) = match whole.strip_prefix('-') {
        Some(d) => ("-", d),
        None => ("", whole),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return text.to_owned();
    }
    let (group, point) = match lang {
        Lang::Ru => ('\u{202f}', ','),
        Lang::En => (',', '.'),
    };
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(group);
        }
        grouped.push(c);
    }
    format!("{sign}{grouped}{point}{cents:0<2}\u{a0}₸")
}

/// An RFC 3339 time as Almaty's clock shows it (`29.11.2026 17:05`); anything else as it is.
pub(crate) fn local_time(text: &str) -> String {
    let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) else {
        return if text == "none" || text == "undefined" {
            String::new()
        } else {
            text.to_owned()
        };
    };
    let t = t.to_offset(crate::domain::ALMATY);
    format!(
        "{:02}.{:02}.{} {:02}:{:02}",
        t.day(),
        u8::from(t.month()),
        t.year(),
        t.hour(),
        t.minute()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_read_as_people_write_them() {
        assert_eq!(money(Lang::En, "1234567.50"), "1,234,567.50\u{a0}₸");
        assert_eq!(money(Lang::Ru, "100.00"), "100,00\u{a0}₸");
        assert_eq!(money(Lang::Ru, "1000.00"), "1\u{202f}000,00\u{a0}₸");
        assert_eq!(money(Lang::En, "abc"), "abc");
    }

    #[test]
    fn times_are_almaty_times() {
        assert_eq!(local_time("2026-11-29T12:05:00Z"), "29.11.2026 17:05");
        assert_eq!(local_time("none"), "");
    }

    #[test]
    fn every_key_has_one_entry() {
        let all: Vec<&str> = ALL
            .iter()
            .flat_map(|w| w.iter().map(|(k, _, _)| *k))
            .collect();
        let mut seen = std::collections::HashSet::new();
        for key in all {
            assert!(seen.insert(key), "label `{key}` is defined twice");
        }
    }
}
