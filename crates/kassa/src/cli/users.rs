//! `kassa user …`: the people who sign in to the dashboard (`/dashboard/`), one organization
//! each. Passwords are read at the prompt (twice, without echo) or one line from standard
//! input with `--password-stdin`, and stored only as argon2 hashes.

use std::io::{BufRead as _, IsTerminal as _};

use anyhow::{bail, Context as _};
use clap::Subcommand;

use super::{find_org, open, print_out, table, when, Slug};
use crate::config::{ServeArgs, StorageArgs};
use crate::domain::Role;
use crate::store::StoreError;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a dashboard user to an organization; prints a one-time sign-in link too.
    Create {
        /// The organization's slug.
        #[arg(long)]
        org: Slug,
        /// The e-mail the user signs in with (one organization per e-mail).
        #[arg(long)]
        email: String,
        /// `owner` (everything), `admin` (everything but the team's owners), `developer` (API
        /// keys, webhooks, invoices, subscriptions, catalog, sandbox), `operator` (create,
        /// cancel and refund invoices) or `viewer` (sees everything, changes nothing).
        #[arg(long, default_value = "owner", value_parser = parse_role)]
        role: Role,
        /// Read the password as one line from standard input instead of asking for it.
        #[arg(long)]
        password_stdin: bool,
        /// The dashboard's address, for the sign-in link.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
    },
    /// List an organization's dashboard users.
    List {
        /// The organization's slug.
        #[arg(long)]
        org: Slug,
    },
    /// Disable a user: signing in is refused and the user's sessions end at once.
    Disable {
        /// The user's e-mail.
        #[arg(long)]
        email: String,
    },
    /// Print a link that signs the user in once (valid for 7 days), e.g. when the password is
    /// lost.
    LoginLink {
        /// The user's e-mail.
        #[arg(long)]
        email: String,
        /// The dashboard's address.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
    },
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| {
        let roles: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        format!("the role is one of {}", roles.join(", "))
    })
}

/// An e-mail as stored: trimmed, lower-cased; refused when it is not an address.
fn email(text: &str) -> anyhow::Result<String> {
    crate::domain::normalize_email(text)
        .with_context(|| format!("`{text}` is not an e-mail address"))
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let password = if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        let first = rpassword::prompt_password("Password: ").context("reading the password")?;
        let again = rpassword::prompt_password("Again: ").context("reading the password")?;
        if first != again {
            bail!("the two passwords differ");
        }
        first
    };
    if password.chars().count() < crate::domain::MIN_PASSWORD_CHARS {
        bail!(
            "the password must be at least {} characters long",
            crate::domain::MIN_PASSWORD_CHARS
        );
    }
    Ok(password)
}

/// `kassa user …`.
pub async fn run(storage: &StorageArgs, command: UserCommand) -> anyhow::Result<()> {
    let (_, store) = open(storage, &ServeArgs::default()).await?;
    match command {
        UserCommand::Create {
            org,
            email: address,
            role,
            password_stdin,
            url,
        } => {
            let org = find_org(&store, &org).await?;
            let address = email(&address)?;
            let password = read_password(password_stdin)?;
            let hash =
                tokio::task::spawn_blocking(move || crate::dashboard::hash_password(&password))
                    .await??;
            let user = match store
                .users()
                .create_user(org.id, &address, Some(&hash), role)
                .await
            {
                Ok(user) => user,
                Err(StoreError::Conflict(_)) => bail!("a user with the e-mail {address} exists"),
                Err(e) => return Err(e).context("storing the user"),
            };
            print_out(&format!("{} (id {}, {})\n", user.email, user.id, role))?;
            let link = crate::dashboard::issue_login_link(&store, user.id).await?;
            eprintln!(
                "user added to {}; sign in at {url}/dashboard/login, or once with:\n    {}{link}",
                org.slug,
                url.trim_end_matches('/')
            );
        }
        UserCommand::List { org } => {
            let org = find_org(&store, &org).await?;
            let users = store
                .users()
                .list_users(org.id)
                .await
                .context("listing users")?;
            let rows = users
                .into_iter()
                .map(|u| {
                    vec![
                        u.id.to_string(),
                        u.email,
                        u.role.to_string(),
                        when(u.created_at),
                        u.disabled_at.map_or_else(|| "-".to_owned(), when),
                    ]
                })
                .collect::<Vec<_>>();
            print_out(&table(
                &["ID", "EMAIL", "ROLE", "CREATED", "DISABLED"],
                &rows,
            ))?;
        }
        UserCommand::Disable { email: address } => {
            let address = email(&address)?;
            if !store.users().disable_user(&address).await? {
                bail!("no user has the e-mail {address}");
            }
            eprintln!("{address} is disabled; its sessions have ended");
        }
        UserCommand::LoginLink {
            email: address,
            url,
        } => {
            let address = email(&address)?;
            let Some(user) = store.users().user_by_email(&address).await? else {
                bail!("no user has the e-mail {address}");
            };
            if user.disabled_at.is_some() {
                bail!("{address} is disabled");
            }
            let link = crate::dashboard::issue_login_link(&store, user.id).await?;
            print_out(&format!("{}{link}\n", url.trim_end_matches('/')))?;
            eprintln!("the link signs {address} in once, within 7 days");
        }
    }
    Ok(())
}
