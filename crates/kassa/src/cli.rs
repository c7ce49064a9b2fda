//! The administration commands of the `kassa` binary: organizations, their API keys, the
//! login of their Kaspi Pay cashier and the Kaspi app build (`kaspi_app.rs`), run against the same database and master key as
//! `kassa serve` (the global `--data-dir`, `--database-url`, `--config`). That database must
//! exist: these commands never create one (a command run in the wrong folder says where it
//! looked instead); `kassa serve` and `kassa migrate` do.
//!
//! Data goes to stdout, one line per item, so scripts can take it
//! (`KEY=$(kassa api-key create --org demo)`); prompts, notes and errors go to stderr. Nothing
//! here prints a secret except a new API key, once; phones are shown masked.

mod api_keys;
mod audit;
mod kaspi_app;
mod users;

pub use api_keys::{run_api_key, ApiKeyCommand};

use std::collections::HashMap;
use std::fmt;
use std::io::{IsTerminal as _, Write as _};
use std::str::FromStr;

use anyhow::{anyhow, bail, Context as _};
use clap::Subcommand;
use kaspi::{LoginPrompt, Phone};
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines, Stdin};

use crate::config::{Config, KaspiArgs, KaspiMode, ServeArgs, StorageArgs};
use crate::db::{Db, DbOptions};
use crate::gateway::{connect_terminal, GatewayError};
use crate::secrets::MasterKey;
use crate::store::{Organization, Store, StoreError, Terminal, TerminalState};

/// The administration commands, flattened into the binary's command list.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Organizations (merchants): create, list.
    #[command(subcommand)]
    Org(OrgCommand),
    /// API keys of an organization: create (shown once), list, revoke.
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
    /// The organization's Kaspi Pay cashiers: log one in (or add one), list them and the state
    /// of their sessions, remove one.
    #[command(subcommand)]
    Terminal(TerminalCommand),
    /// Webhook endpoints of an organization: create (the secret is shown once), list, get,
    /// update, delete, rotate-secret, attempts, redeliver; the same functions as
    /// `/api/v1/webhooks`.
    Webhook(Box<crate::webhooks::cli::WebhookArgs>),
    /// Kaspi settings taken up without a restart: `kassa kaspi app-build show|set|reset`.
    #[command(subcommand)]
    Kaspi(kaspi_app::KaspiCommand),
    /// Dashboard users of an organization: create, list, disable, login-link.
    #[command(subcommand)]
    User(users::UserCommand),
    /// The audit log: who changed what, from where, when (`kassa audit list`).
    #[command(subcommand)]
    Audit(audit::AuditCommand),
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organization; prints `<slug> (id <id>)`.
    Create {
        /// Short unique name used by the other commands: lowercase letters, digits and `-`.
        slug: Slug,
        /// The organization's name, for people.
        #[arg(long)]
        name: String,
    },
    /// List the organizations.
    List,
}

#[derive(Debug, Subcommand)]
pub enum TerminalCommand {
    /// Log a Kaspi Pay cashier of the organization in; asks here for the password, the SMS
    /// code or the confirmation in the app.
    ///
    /// A phone the organization has no cashier with adds a cashier: Kassa spreads the
    /// organization's Kaspi calls over its cashiers, each within its own Kaspi limit, so a
    /// second and third cashier raise how many invoices a second it can make. They must all
    /// be cashiers of one Kaspi organization (in Kaspi Pay, the organization adds cashiers).
    /// A phone it has logs that cashier in again.
    ///
    /// In sandbox mode (the default) the login goes to the Kaspi simulator inside the RUNNING
    /// `kassa serve`, at http://<listen>/sandbox/kaspi: start `kassa serve` first, with the
    /// same --listen. The sandbox password is `sandbox`; the command says where to read the
    /// sandbox SMS code. In live mode it goes to Kaspi (or the --kaspi-*-url given).
    ///
    /// Answers are read from the terminal (the password without echo), or one line each from
    /// standard input when it is not a terminal.
    Connect(Box<ConnectArgs>),
    /// Show each organization's cashiers and their sessions: state, reason, masked phone,
    /// last change.
    Status {
        /// Only this organization.
        #[arg(long)]
        org: Option<Slug>,
    },
    /// List an organization's cashiers and their sessions (`status` for one organization).
    List {
        /// The organization's slug.
        #[arg(long)]
        org: Slug,
    },
    /// Remove a cashier of the organization: Kassa stops using it (its invoices are served by
    /// the organization's other cashiers). The device stays registered at Kaspi.
    Remove {
        /// The organization's slug.
        #[arg(long)]
        org: Slug,
        /// The cashier's phone, as it was connected (any usual form of the number).
        #[arg(long)]
        phone: Phone,
    },
}

/// Arguments of `kassa terminal connect`.
#[derive(Debug, clap::Args)]
pub struct ConnectArgs {
    /// The organization's slug.
    #[arg(long)]
    pub org: Slug,
    /// The cashier's phone, e.g. 87001234567 or +7 700 123 45 67.
    #[arg(long)]
    pub phone: Phone,
    /// The Kaspi settings of `kassa serve` that the login uses.
    #[command(
        flatten,
        next_help_heading = "Kaspi (the same settings as `kassa serve`)"
    )]
    pub kaspi: KaspiArgs,
}

/// An organization's slug: 1 to 63 lowercase ASCII letters, digits and `-`, not starting with
/// `-` (it would read as a flag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slug(String);

/// Why a slug was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a slug is 1 to 63 lowercase letters, digits and '-', not starting with '-'")]
pub struct SlugError;

impl Slug {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Slug {
    type Err = SlugError;

    fn from_str(s: &str) -> Result<Slug, SlugError> {
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        if (1..=63).contains(&s.len()) && !s.starts_with('-') && s.chars().all(allowed) {
            Ok(Slug(s.to_owned()))
        } else {
            Err(SlugError)
        }
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub use crate::domain::mask_phone;

/// Runs one administration command.
/// The changes a command makes are recorded in the audit log as the host user's
/// (`cli:<user>`).
pub async fn run(storage: &StorageArgs, command: AdminCommand) -> anyhow::Result<()> {
    let work = async {
        match command {
            AdminCommand::Org(command) => run_org(storage, command).await,
            AdminCommand::ApiKey(command) => run_api_key(storage, command).await,
            AdminCommand::Terminal(command) => run_terminal(storage, command).await,
            AdminCommand::Webhook(args) => crate::webhooks::cli::run(storage, *args).await,
            AdminCommand::Kaspi(command) => kaspi_app::run(storage, command).await,
            AdminCommand::User(command) => users::run(storage, command).await,
            AdminCommand::Audit(command) => audit::run(storage, command).await,
        }
    };
    crate::audit::acting(crate::audit::Actor::cli(), work).await
}

/// `kassa org …`.
pub async fn run_org(storage: &StorageArgs, command: OrgCommand) -> anyhow::Result<()> {
    let (_, store) = open(storage, &ServeArgs::default()).await?;
    match command {
        OrgCommand::Create { slug, name } => {
            let org = match store.orgs().create_org(slug.as_str(), &name).await {
                Ok(org) => org,
                Err(StoreError::Conflict(_)) => {
                    bail!("an organization with the slug `{slug}` already exists")
                }
                Err(e) => return Err(e).context("creating the organization"),
            };
            print_out(&format!("{} (id {})\n", org.slug, org.id))?;
            eprintln!(
                "organization created; make an API key with `kassa api-key create --org {}`",
                org.slug
            );
        }
        OrgCommand::List => {
            let orgs = store
                .orgs()
                .list_orgs()
                .await
                .context("listing organizations")?;
            if orgs.is_empty() {
                eprintln!(
                    "no organizations yet; create one with `kassa org create <slug> --name <name>`"
                );
                return Ok(());
            }
            let rows = orgs
                .into_iter()
                .map(|o| vec![o.id.to_string(), o.slug, o.name, when(o.created_at)])
                .collect::<Vec<_>>();
            print_out(&table(&["ID", "SLUG", "NAME", "CREATED"], &rows))?;
        }
    }
    Ok(())
}

/// `kassa terminal …`.
pub async fn run_terminal(storage: &StorageArgs, command: TerminalCommand) -> anyhow::Result<()> {
    match command {
        TerminalCommand::Connect(args) => connect(storage, *args).await,
        TerminalCommand::Status { org } => status(storage, org).await,
        TerminalCommand::List { org } => status(storage, Some(org)).await,
        TerminalCommand::Remove { org, phone } => remove(storage, &org, &phone).await,
    }
}

async fn connect(storage: &StorageArgs, args: ConnectArgs) -> anyhow::Result<()> {
    let (config, store) = open(storage, &args.kaspi.serve_args()).await?;
    let org = find_org(&store, &args.org).await?;
    let master_key = load_master_key(&config)?;
    let client_config = config.kaspi_client_config(config.listen);
    let phone = args.phone;
    let sandbox_base = (config.kaspi == KaspiMode::Sandbox).then(|| {
        let entrance = &client_config.endpoints.entrance;
        entrance
            .strip_suffix("/entrance-pay")
            .unwrap_or(entrance)
            .to_owned()
    });
    match &sandbox_base {
        Some(base) => eprintln!(
            "sandbox: logging in to the Kaspi simulator inside the running `kassa serve` at {base}\n\
             sandbox: the password is `{}`; read the SMS code with\n    \
             curl {base}/_control/sms/{phone}\n\
             sandbox: and confirm an app login with\n    \
             curl -X POST {base}/_control/app-confirm/{phone}",
            kaspi_sim::DEFAULT_PASSWORD,
        ),
        None => eprintln!(
            "logging cashier {} in to Kaspi at {}",
            mask_phone(phone.as_str()),
            client_config.endpoints.entrance
        ),
    }
    let mut prompt = TerminalPrompt::new();
    let connected = connect_terminal(
        &store,
        &master_key,
        client_config,
        org.id,
        &phone,
        &mut prompt,
    )
    .await;
    match connected {
        Ok(_) => {
            print_out(&format!(
                "connected: organization {}, cashier {}\n",
                org.slug,
                mask_phone(phone.as_str())
            ))?;
            Ok(())
        }
        Err(GatewayError::KaspiUnavailable(why)) if sandbox_base.is_some() => Err(anyhow!(
            "the sandbox Kaspi at {} did not answer: the sandbox lives inside `kassa serve`, \
             so start `kassa serve` first (in sandbox mode, with the same --listen) and run \
             this again ({why})",
            sandbox_base.unwrap_or_default()
        )),
        Err(e) => Err(anyhow!(e).context("the cashier was not logged in")),
    }
}

async fn status(storage: &StorageArgs, only: Option<Slug>) -> anyhow::Result<()> {
    let (_, store) = open(storage, &ServeArgs::default()).await?;
    let (orgs, terminals) = match only {
        Some(slug) => {
            let org = find_org(&store, &slug).await?;
            let terminals = store.orgs().terminals_for_org(org.id).await?;
            (vec![org], terminals)
        }
        None => (
            store.orgs().list_orgs().await?,
            store.orgs().list_terminals().await?,
        ),
    };
    if orgs.is_empty() {
        eprintln!("no organizations yet; create one with `kassa org create <slug> --name <name>`");
        return Ok(());
    }
    let mut by_org: HashMap<i64, Vec<Terminal>> = HashMap::new();
    for t in terminals {
        by_org.entry(t.org_id).or_default().push(t);
    }
    let mut rows = Vec::new();
    for org in orgs {
        match by_org.remove(&org.id) {
            Some(cashiers) => rows.extend(cashiers.into_iter().map(|t| status_row(&org, Some(t)))),
            None => rows.push(status_row(&org, None)),
        }
    }
    print_out(&table(
        &["ORG", "STATE", "PHONE", "CHANGED", "REASON"],
        &rows,
    ))
}

/// `kassa terminal remove`: Kassa stops using the cashier with `phone`.
async fn remove(storage: &StorageArgs, org: &Slug, phone: &Phone) -> anyhow::Result<()> {
    let (_, store) = open(storage, &ServeArgs::default()).await?;
    let org = find_org(&store, org).await?;
    let removed = store
        .orgs()
        .delete_terminal(org.id, phone.as_str())
        .await
        .context("removing the cashier")?;
    if !removed {
        bail!(
            "organization {} has no cashier with the phone {} (see `kassa terminal list --org {}`)",
            org.slug,
            mask_phone(phone.as_str()),
            org.slug
        );
    }
    let left = store.orgs().terminals_for_org(org.id).await?.len();
    print_out(&format!(
        "removed: organization {}, cashier {}
",
        org.slug,
        mask_phone(phone.as_str())
    ))?;
    eprintln!(
        "organization {} has {left} cashier{} left{}",
        org.slug,
        if left == 1 { "" } else { "s" },
        if left == 0 {
            "; connect one with `kassa terminal connect`"
        } else {
            ""
        }
    );
    Ok(())
}

/// One line of `terminal status`; never a secret.
fn status_row(org: &Organization, terminal: Option<Terminal>) -> Vec<String> {
    let Some(t) = terminal else {
        return vec![
            org.slug.clone(),
            "not_connected".into(),
            "-".into(),
            "-".into(),
            format!("run `kassa terminal connect --org {} --phone …`", org.slug),
        ];
    };
    // An active row without a session cannot be used either: say so as the gateway would.
    let (state, reason) = match (t.state, &t.session_sealed) {
        (TerminalState::Active, Some(_)) => (t.state, t.state_reason),
        (TerminalState::Active, None) => (
            TerminalState::NeedsLogin,
            Some("no session stored".to_owned()),
        ),
        (TerminalState::NeedsLogin, _) => (t.state, t.state_reason),
    };
    vec![
        org.slug.clone(),
        state.as_str().into(),
        mask_phone(&t.phone),
        when(t.updated_at),
        reason.unwrap_or_else(|| "-".into()),
    ]
}

/// Asks the cashier at the terminal; reads answers from standard input when it is not one.
struct TerminalPrompt {
    lines: Lines<BufReader<Stdin>>,
    tty: bool,
    /// The password was asked before: asked again, it was refused.
    password_asked: bool,
}

impl TerminalPrompt {
    fn new() -> TerminalPrompt {
        TerminalPrompt {
            lines: BufReader::new(tokio::io::stdin()).lines(),
            tty: std::io::stdin().is_terminal(),
            password_asked: false,
        }
    }

    /// Shows `question` on stderr and reads one line (without its line ending).
    async fn ask(&mut self, question: &str) -> Result<String, String> {
        eprint!("{question}");
        let line = self.lines.next_line().await;
        if !self.tty {
            // The answer was not echoed: end the question's line.
            eprintln!();
        }
        match line {
            Ok(Some(line)) => Ok(line),
            Ok(None) => Err("standard input ended before an answer was given".into()),
            Err(e) => Err(format!("reading standard input: {e}")),
        }
    }
}

impl LoginPrompt for TerminalPrompt {
    async fn password(&mut self) -> Result<String, String> {
        let question = if std::mem::replace(&mut self.password_asked, true) {
            "Kaspi did not accept that password. Kaspi Pay password: "
        } else {
            "Kaspi Pay password: "
        };
        if !self.tty {
            return self.ask(question).await;
        }
        tokio::task::spawn_blocking(move || rpassword::prompt_password(question))
            .await
            .map_err(|e| format!("reading the password: {e}"))?
            .map_err(|e| format!("reading the password: {e}"))
    }

    async fn sms_code(&mut self, retry: bool) -> Result<String, String> {
        let question = if retry {
            "Kaspi did not accept that code. SMS code: "
        } else {
            "SMS code from Kaspi: "
        };
        Ok(self.ask(question).await?.trim().to_owned())
    }

    async fn confirm_in_app(&mut self) -> Result<(), String> {
        self.ask("Confirm the login in the Kaspi Pay app, then press Enter ")
            .await
            .map(drop)
    }
}

/// Resolves the configuration as `kassa serve` would, then opens and migrates its database,
/// which must exist: only `kassa serve` and `kassa migrate` create one (see
/// [`require_database`]).
pub(crate) async fn open(
    storage: &StorageArgs,
    serve: &ServeArgs,
) -> anyhow::Result<(Config, Store)> {
    let config = Config::resolve(storage, serve)?;
    require_database(storage, &config)?;
    crate::datadir::prepare(&config)?;
    let database = crate::logging::redact_url(&config.database_url);
    let db = Db::open(&config.database_url, DbOptions::default())
        .await
        .with_context(|| format!("opening the database {database}"))?;
    db.migrate()
        .await
        .with_context(|| format!("migrating the database {database}"))?;
    Ok((config, Store::new(db)))
}

/// Refuses a SQLite database that does not exist, saying where it was looked for and why
/// there: a command run in the wrong folder must not make an empty database of its own
/// (PostgreSQL databases are made by their server, not here).
fn require_database(storage: &StorageArgs, config: &Config) -> anyhow::Result<()> {
    let Some(path) = config
        .database_url
        .strip_prefix("sqlite://")
        .filter(|p| !p.is_empty())
    else {
        return Ok(());
    };
    if std::path::Path::new(path).exists() {
        return Ok(());
    }
    let given = |variable: &str, flag: &str, value: &std::ffi::OsStr| {
        if std::env::var_os(variable).as_deref() == Some(value) {
            format!("{variable} says so")
        } else {
            format!("{flag} says so")
        }
    };
    let default_url = format!("sqlite://{}", config.data_dir.join("kassa.db").display());
    let create = "run `kassa serve` (or `kassa migrate`) once";
    let (why, fix) = if let Some(url) = &storage.database_url {
        (
            given("KASSA_DATABASE_URL", "--database-url", url.as_ref()),
            format!("{create} with this URL to create it, or correct the URL"),
        )
    } else if config.database_url != default_url {
        let file = storage
            .config
            .clone()
            .unwrap_or_else(|| config.data_dir.join("kassa.toml"));
        (
            format!("database_url in {} says so", file.display()),
            format!("{create} to create it, or correct database_url there"),
        )
    } else if let Some(dir) = &storage.data_dir {
        (
            format!(
                "it is the database of the data dir {}, and {}",
                dir.display(),
                given("KASSA_DATA_DIR", "--data-dir", dir.as_os_str())
            ),
            format!(
                "{create} with this data dir to create it, or pass the --data-dir (or \
                 --database-url) of the existing one"
            ),
        )
    } else {
        let here = std::env::current_dir()
            .map(|d| format!(" in {}", d.display()))
            .unwrap_or_default();
        (
            format!("it is the database of the default data dir ./kassa-data{here}"),
            "run `kassa serve` once in this folder to create it (or `kassa migrate`), or run \
             this command where `kassa serve` runs, or pass --data-dir/--database-url"
                .to_owned(),
        )
    };
    bail!("no database at {path} (looked there because {why}); {fix}")
}

pub(crate) fn load_master_key(config: &Config) -> anyhow::Result<MasterKey> {
    MasterKey::load_or_create(&config.data_dir).context("loading the master key")
}

pub(crate) async fn find_org(store: &Store, slug: &Slug) -> anyhow::Result<Organization> {
    store
        .orgs()
        .org_by_slug(slug.as_str())
        .await
        .context("looking up the organization")?
        .ok_or_else(|| anyhow!("no organization `{slug}` (see `kassa org list`)"))
}

/// Unix milliseconds as `2026-11-23T10:00:00Z`.
pub(crate) fn when(ms: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Rows under a header, columns padded to line up.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|&h| h.to_owned()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            let pad = width.saturating_sub(cell.chars().count());
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', pad + 2));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Writes data to stdout; a reader that went away (`| head`) is not an error.
pub(crate) fn print_out(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to standard output"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_checked() {
        for good in ["demo", "a", "shop-1", "0x", &"a".repeat(63)] {
            assert!(good.parse::<Slug>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "Demo",
            "shop_1",
            "-x",
            "магазин",
            "a b",
            &"a".repeat(64),
        ] {
            assert!(bad.parse::<Slug>().is_err(), "{bad}");
        }
    }

    #[test]
    fn phones_are_masked() {
        assert_eq!(mask_phone("7001234567"), "700***4567");
        assert_eq!(mask_phone("12"), "***");
    }

    #[test]
    fn tables_line_up() {
        let rows = vec![vec!["1".to_owned(), "shop".to_owned(), "A shop".to_owned()]];
        assert_eq!(
            table(&["ID", "SLUG", "NAME"], &rows),
            "ID  SLUG  NAME\n1   shop  A shop\n"
        );
        assert_eq!(when(0), "1970-01-01T00:00:00Z");
    }
}
