//! `kassa kaspi app-build …`: the Kaspi app version and build Kassa presents. Kaspi refuses
//! builds below a minimum it raises for every cashier at once; a newer build set here is stored
//! in the database (`settings`), so every running `kassa serve` presents it within a few
//! seconds, without a restart, and the work the old build stopped resumes.

use std::fmt;
use std::str::FromStr;

use anyhow::Context as _;
use clap::Subcommand;

use super::{open, print_out};
use crate::config::{ServeArgs, StorageArgs};
use crate::gateway::{AppBuild, SETTING_APP_BUILD, SETTING_APP_VERSION};

#[derive(Debug, Subcommand)]
pub enum KaspiCommand {
    /// The app version and build presented to Kaspi: show, set, reset.
    #[command(subcommand)]
    AppBuild(AppBuildCommand),
}

#[derive(Debug, Subcommand)]
pub enum AppBuildCommand {
    /// Show the version and build in use, where they come from, and whether Kaspi refuses them.
    Show,
    /// Present this build (and version) from now on. Stored in the database: every running
    /// `kassa serve` takes it up within a few seconds, without a restart.
    Set {
        /// The app build, a number such as 1120 (a build of the current Kaspi Pay app).
        build: AppBuildNumber,
        /// The app version that goes with it, such as 26.1101; unchanged when not given.
        #[arg(long)]
        version: Option<AppVersion>,
    },
    /// Back to the configured version and build (`kaspi_app_version`, `kaspi_app_build`).
    Reset,
}

/// An app build: 1 to 9 digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppBuildNumber(String);

/// An app version: digits separated by dots, such as `26.1101`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppVersion(String);

/// Why an app build or version was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AppBuildError(&'static str);

impl FromStr for AppBuildNumber {
    type Err = AppBuildError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if (1..=9).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(AppBuildNumber(s.to_owned()))
        } else {
            Err(AppBuildError(
                "an app build is a number such as 1120 (the build of a current Kaspi Pay app)",
            ))
        }
    }
}

impl FromStr for AppVersion {
    type Err = AppBuildError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts_ok = s
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if (1..=32).contains(&s.len()) && parts_ok {
            Ok(AppVersion(s.to_owned()))
        } else {
            Err(AppBuildError(
                "an app version is numbers separated by dots, such as 26.1101",
            ))
        }
    }
}

impl fmt::Display for AppBuildNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Runs `kassa kaspi …`.
pub async fn run(storage: &StorageArgs, command: KaspiCommand) -> anyhow::Result<()> {
    let KaspiCommand::AppBuild(command) = command;
    let (config, store) = open(storage, &ServeArgs::default()).await?;
    let app = AppBuild::new(config.kaspi_app.clone().into(), std::time::Duration::ZERO);
    match command {
        AppBuildCommand::Show => {}
        AppBuildCommand::Set { build, version } => {
            store
                .set_setting(SETTING_APP_BUILD, &build.0)
                .await
                .context("storing the app build")?;
            if let Some(version) = version {
                store
                    .set_setting(SETTING_APP_VERSION, &version.0)
                    .await
                    .context("storing the app version")?;
            }
            eprintln!(
                "stored: running kassa processes present it to Kaspi within a few seconds, \
                 no restart needed"
            );
        }
        AppBuildCommand::Reset => {
            store.delete_setting(SETTING_APP_BUILD).await?;
            store.delete_setting(SETTING_APP_VERSION).await?;
            eprintln!("back to the configured app version and build");
        }
    }
    let state = app.state(&store).await.context("reading the settings")?;
    print_out(&format!(
        "version {} build {} ({}){}\n",
        state.version,
        state.build,
        if state.source == "settings" {
            "set with `kassa kaspi app-build set`"
        } else {
            "from the configuration"
        },
        if state.outdated {
            " — Kaspi refuses this build"
        } else {
            ""
        }
    ))?;
    if state.outdated {
        eprintln!("{}", state.action());
    }
    Ok(())
}
