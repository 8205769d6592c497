//! The command line as clap types, and nothing else: these types hold no
//! logic. Their doc comments are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Run an association's own mail, cloud storage and lending board from one manifest.
#[derive(Debug, Parser)]
#[command(name = "voisin", version, about, max_term_width = 100)]
pub struct Cli {
    /// Options every command shares.
    #[command(flatten)]
    pub global: GlobalArgs,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command shares. Listed under their own heading, after a
/// subcommand's own options, so that `voisin board serve --help` shows its
/// own flags together.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// The manifest to read.
    #[arg(
        short = 'f',
        long = "file",
        global = true,
        value_name = "FILE",
        env = "VOISIN_FILE"
    )]
    pub file: Option<PathBuf>,

    /// Use the catalog in DIR (holding `catalog/NAME.yaml` and `templates/NAME/`)
    /// instead of the one built into voisin.
    #[arg(long, global = true, value_name = "DIR", env = "VOISIN_CATALOG")]
    pub catalog: Option<PathBuf>,

    /// age identity file that decrypts `.voisin/secrets.yaml.age` when the
    /// plain secrets file is not there (a fresh clone of the association's
    /// repository, say).
    #[arg(long, global = true, value_name = "FILE", env = "VOISIN_AGE_IDENTITY")]
    pub identity: Option<PathBuf>,

    /// How to print results that are data.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Print less: only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Print more about what is being done.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// When to draw progress bars.
    #[arg(long, global = true, value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,

    /// Language of messages [default: `LANG` when it names French or
    /// English, else the manifest's `locale`].
    #[arg(long, global = true, value_enum)]
    pub lang: Option<Lang>,
}

/// A language voisin's messages speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// English.
    En,
    /// French.
    Fr,
}

/// Output format for commands whose output is data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Made for people to read.
    Text,
    /// Made for programs to read; the shape is documented in `docs/json-output.md`.
    Json,
}

/// When to draw progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    /// Only when standard error is a terminal.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a first `voisin.yaml`, commented, that passes `check`, and the
    /// JSON Schema beside it for editors.
    ///
    /// Asks for what it needs when run in a terminal; with `--name` and
    /// `--domain` (and the other flags for the rest) it asks nothing, for
    /// scripts. Never overwrites a manifest.
    Init(InitArgs),

    /// Check manifests against the schema and the catalog, offline.
    ///
    /// Every problem in every file is reported at once, each with its file,
    /// line and column. Exits 0 when all files are valid, 1 when any is not.
    Check(CheckArgs),

    /// Print the manifest's JSON Schema (draft-07), for editors and CI.
    Schema,

    /// What the catalog offers.
    #[command(subcommand)]
    Catalog(CatalogCommand),

    /// The neighbourhood lending board: what its container runs.
    #[command(subcommand)]
    Board(BoardCommand),

    /// Print the DNS records the association needs, as zone-file lines.
    ///
    /// A and AAAA for every host, and with a mail service MX, SPF, DKIM,
    /// DMARC and mail-client autoconfiguration. The DKIM key is made on
    /// first need and kept with the secrets, so the record printed before
    /// the first deploy is the one the deploy uses. With `--check`, asks DNS
    /// and reports each record that is missing or different: exits 0 when
    /// all are in place, 1 when some are not, 2 when no resolver answers.
    Dns(DnsArgs),

    /// Write every rendered configuration file and the desired state.
    ///
    /// Secrets missing from `.voisin/secrets.yaml` are generated first. Two
    /// runs give byte-identical output. Files holding secrets are written
    /// with mode 0600.
    Render(RenderArgs),

    /// Show what `deploy` would change, without changing anything.
    ///
    /// Compares the manifest's desired state with what the engine runs:
    /// each container is created, replaced (with the field that changed),
    /// started, kept or removed. Changes made by hand show here too.
    Plan,

    /// Converge the engine to the manifest.
    ///
    /// Creates networks and volumes, pulls or builds images, starts
    /// containers in dependency order and waits for their health, replaces
    /// only what changed (the old container serves until the new one is
    /// healthy, and comes back if it is not), then runs the after-start
    /// steps. Holds the association's lock on the engine meanwhile. A deploy
    /// that has nothing to do changes nothing.
    Deploy(DeployArgs),

    /// Every service and container: state, health, image, uptime, restarts.
    Status,

    /// A service's container logs.
    Logs(LogsArgs),

    /// One pass of every check, and alerts for what changed.
    ///
    /// Container health and restarts, the age of each service's last
    /// snapshot and last proven restore, certificate expiry, free disk,
    /// the mail ports. A problem is told once when it starts (through the
    /// manifest's `operations.alerts`: an outside SMTP relay and/or a
    /// webhook), reminded every `remind_every`, and told once when it
    /// ends. `voisin schedule install` runs it every few minutes. Exits 1
    /// when anything is critical or no alert could be delivered.
    Watch,

    /// Stop and remove the bundle's containers and networks.
    ///
    /// Volumes (the association's data) are kept unless `--volumes` is
    /// given and confirmed.
    Down(DownArgs),

    /// Back the services up into the manifest's repository.
    ///
    /// For each service (all when none is named), the catalog's steps in
    /// order: `before` (maintenance mode on), dumps streamed from commands
    /// in its containers, its volumes streamed out of the engine, and
    /// `after`, which always runs. One snapshot per service, deduplicated
    /// and encrypted in restic's format; a backup that fails keeps nothing.
    /// `backup list`, `backup verify` and `backup prune` look after the
    /// repository.
    Backup(BackupArgs),

    /// Put services back as a snapshot holds them.
    ///
    /// `voisin restore [SNAPSHOT] [SERVICE...]`: the newest snapshot of each
    /// service (all when none is named), or the one given. Takes a safety
    /// snapshot of the current state first, stops what uses the volumes,
    /// restores them and the dumps, and starts the service behind its
    /// health check. Asks to type the association's domain unless `--yes`.
    Restore(RestoreArgs),

    /// Move a service to the catalog's newer version of its entry.
    ///
    /// `voisin upgrade [SERVICE]`: every service whose catalog entry has a
    /// new version or new images (all when none is named). Shows the plan,
    /// refuses a version the entry says cannot be skipped, takes a safety
    /// snapshot (no snapshot, no upgrade), deploys the new version, runs
    /// the entry's upgrade steps and checks, and on any failure or Ctrl-C
    /// puts the old version back with its data, then exits 1 with the
    /// failed containers' logs. `deploy` keeps such services on their
    /// deployed version.
    Upgrade(UpgradeArgs),

    /// The routine (nightly backup then prune, weekly verify, watch) as
    /// systemd timers, or cron where systemd does not run.
    #[command(subcommand)]
    Schedule(ScheduleCommand),

    /// Check everything a first deploy needs, each with what to do.
    ///
    /// The engine, the ports the services publish, DNS records (and the
    /// partner's backup mail server), reverse DNS, the clock, free disk
    /// space, the backup repository and the secrets file's permissions.
    /// Each line says `ok`, `warning` or `problem`. Exits 0 when nothing is
    /// a problem (warnings alone exit 0), 1 when anything is.
    Doctor(DoctorArgs),

    /// voisin's side inside a helper container, for backups and restores.
    #[command(subcommand, hide = true)]
    Agent(AgentCommand),

    /// The association's secrets.
    #[command(subcommand)]
    Secrets(SecretsCommand),

    /// The association's members.
    #[command(subcommand)]
    Members(MembersCommand),

    /// Print a shell completion script, generated from voisin's own
    /// command line.
    ///
    /// For bash: `voisin completions bash > ~/.local/share/bash-completion/completions/voisin`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Print voisin's manual page (roff), or write one page per command.
    ///
    /// `voisin man | man -l -` reads it; packagers use `--out DIR`.
    Man {
        /// Write `voisin.1` and a `voisin-COMMAND.1` page for every command
        /// into DIR instead of printing the main page.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

/// Arguments of `voisin init`. The manifest is written where `--file`
/// says, else to `voisin.yaml`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The association's name, as members know it.
    #[arg(long)]
    pub name: Option<String>,

    /// The association's domain, like `amis-quartier.org`.
    #[arg(long)]
    pub domain: Option<String>,

    /// Services to run, comma-separated: `mail`, `cloud`, `board`
    /// [default: all three].
    #[arg(long, value_delimiter = ',', value_name = "ROLES")]
    pub services: Option<Vec<String>>,

    /// The first admin's full name [default: `Admin`].
    #[arg(long, value_name = "NAME")]
    pub admin_name: Option<String>,

    /// The first admin's own address outside the association (required
    /// without a mail service: sign-in links go there).
    #[arg(long, value_name = "ADDRESS")]
    pub admin_email: Option<String>,

    /// Language of the board and mails: `fr` or `en` [default: from `LANG`].
    #[arg(long, value_name = "fr|en")]
    pub locale: Option<String>,

    /// IANA time zone, like `Europe/Paris` [default: `UTC`].
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,

    /// The machine's public IPv4 address, for DNS records and mail.
    #[arg(long, value_name = "ADDRESS")]
    pub ipv4: Option<std::net::Ipv4Addr>,
}

/// Arguments of `voisin render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Where to write (default: `.voisin/rendered` beside the manifest). A
    /// folder that is not empty must have been written by `voisin render`.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Also write `compose.yaml`, an equivalent docker-compose file.
    #[arg(long)]
    pub compose: bool,
}

/// Arguments of `voisin deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Take over the lock held by a run that died on another machine
    /// (asks for confirmation unless `--yes`).
    #[arg(long)]
    pub force_unlock: bool,

    /// Answer yes to confirmations.
    #[arg(long)]
    pub yes: bool,
}

/// Arguments of `voisin logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The service, by role (`board`, `mail`…).
    pub service: String,

    /// One of its containers (default: all of them).
    pub container: Option<String>,

    /// Keep printing new lines (no `-f`: that names the manifest).
    #[arg(long)]
    pub follow: bool,

    /// Only lines newer than this, like `10m` or `2h`.
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,

    /// Only the last N lines of each container.
    #[arg(long, value_name = "N")]
    pub tail: Option<u64>,
}

/// Arguments of `voisin backup`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    /// What to do with the repository instead of backing up.
    #[command(subcommand)]
    pub command: Option<BackupCommand>,

    /// The services to back up, by role (all when none is given).
    pub services: Vec<String>,

    /// Take over the lock held by a run that died on another machine
    /// (asks for confirmation unless `--yes`).
    #[arg(long)]
    pub force_unlock: bool,

    /// Answer yes to confirmations.
    #[arg(long)]
    pub yes: bool,
}

/// `voisin backup …`
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// The association's snapshots, oldest first.
    List,
    /// Check the repository, name any snapshot it can no longer restore,
    /// then restore the newest snapshot of each service into throwaway
    /// volumes and compare every file with the snapshot.
    Verify(VerifyArgs),
    /// Remove the snapshots the manifest's `keep` policy no longer wants
    /// (never a service's newest, nor its last verified one) and free
    /// their space.
    Prune(PruneArgs),
}

/// Arguments of `voisin backup verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Read back only this share of the stored data, like `10%` (all of
    /// it by default).
    #[arg(long, value_name = "N%")]
    pub read_data_subset: Option<String>,
}

/// Arguments of `voisin backup prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Say what would be removed, and remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Arguments of `voisin upgrade`.
#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// The service, by role (default: every service with a newer version).
    pub service: Option<String>,

    /// Show the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Take over the lock held by a run that died on another machine
    /// (asks for confirmation unless `--yes`).
    #[arg(long)]
    pub force_unlock: bool,

    /// Answer yes to confirmations.
    #[arg(long)]
    pub yes: bool,
}

/// Arguments of `voisin restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// `[SNAPSHOT] [SERVICE...]`: a snapshot id (or its first characters)
    /// and/or services by role.
    pub what: Vec<String>,

    /// Answer yes to confirmations.
    #[arg(long)]
    pub yes: bool,

    /// Take over the lock held by a run that died on another machine
    /// (asks for confirmation unless `--yes`).
    #[arg(long)]
    pub force_unlock: bool,
}

/// `voisin agent …`: run by voisin inside a helper container.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Wait to be given work.
    Idle,
    /// List a folder, then send the files asked for on standard input.
    Serve {
        /// The folder.
        root: PathBuf,
    },
    /// Remove everything in a folder (the folder stays).
    Clean {
        /// The folder.
        root: PathBuf,
    },
    /// Print every entry of a folder with a hash of its content (JSON).
    Digest {
        /// The folder.
        root: PathBuf,
    },
}

/// Arguments of `voisin down`.
#[derive(Debug, Args)]
pub struct DownArgs {
    /// Also remove the volumes: every member's data. Asks to type the
    /// association's domain unless `--yes`.
    #[arg(long)]
    pub volumes: bool,

    /// Answer yes to confirmations.
    #[arg(long)]
    pub yes: bool,

    /// Take over the lock held by a run that died on another machine
    /// (asks for confirmation unless `--yes`).
    #[arg(long)]
    pub force_unlock: bool,
}

/// `voisin secrets …`
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Create an age identity (a private key) for `secrets encrypt` and
    /// `--identity`, and print its public key; no other tool is needed.
    ///
    /// The file is written with mode 0600 and never overwritten. Keep it
    /// outside the association's repository (a password manager, a USB key):
    /// whoever holds it can read every secret.
    Keygen {
        /// Where to write the identity, like `~/.config/voisin/identity.txt`.
        #[arg(value_name = "FILE")]
        out: PathBuf,
    },

    /// Write `.voisin/secrets.yaml.age`, an age-encrypted copy of every
    /// secret that can be committed beside the manifest.
    ///
    /// voisin reads it back when the plain file is missing, with the
    /// identity given by `--identity` (or `VOISIN_AGE_IDENTITY`).
    Encrypt {
        /// An age public key (`age1…`) that may decrypt the copy; repeat for several.
        #[arg(
            long = "recipient",
            short = 'r',
            value_name = "AGE_KEY",
            required = true
        )]
        recipients: Vec<String>,
    },

    /// Keep a secret someone gave the association, like the password of
    /// the outside SMTP relay alerts go through (`alerts-smtp`).
    ///
    /// The value is read from standard input, never from the command line,
    /// so it shows neither in the shell's history nor in the process list:
    /// `voisin secrets set alerts-smtp < file`, or type it and end with Ctrl-D.
    Set {
        /// The secret's name, like `alerts-smtp`.
        name: String,
    },
}

/// `voisin members …`
#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// Print one member's initial credentials, to hand over to them.
    ///
    /// The only command that prints a secret, and only that member's.
    Credentials {
        /// The member's id in the manifest.
        id: String,
    },
}

/// Arguments of `voisin check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Manifests to check (default: the `--file` manifest, else `voisin.yaml`).
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Arguments of `voisin dns`.
#[derive(Debug, Args)]
pub struct DnsArgs {
    /// Compare the records with what DNS answers today.
    #[arg(long)]
    pub check: bool,

    /// With `--check`: ask this DNS server (like `192.0.2.53:53`) instead of
    /// the system's resolvers.
    #[arg(long, value_name = "IP:PORT", requires = "check")]
    pub resolver: Option<std::net::SocketAddr>,
}

/// `voisin catalog …`
#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// List the catalog's entries by role.
    List,
    /// Show one entry: its role, version, settings with their types and
    /// defaults, and its containers.
    Show {
        /// The entry's name, as a service's `use:` names it.
        name: String,

        /// Show instead what the entry relies on in its upstream images
        /// (environment variables, paths and formats, capabilities, health
        /// commands), each with the upstream source that says so.
        #[arg(long)]
        upstream: bool,
    },
}

/// `voisin board …`
#[derive(Debug, Subcommand)]
pub enum BoardCommand {
    /// Serve the lending board over HTTP.
    ///
    /// Every option has an environment fallback, which is how the board's
    /// container is configured.
    Serve(Box<BoardServeArgs>),

    /// Write a consistent snapshot of the board's database, even while the
    /// board runs (an online backup).
    Backup(BoardBackupArgs),

    /// Replace the board's database with a snapshot `backup` wrote, while
    /// the board runs (an online backup, the other way).
    Restore(BoardRestoreArgs),

    /// Exit 0 when the board on this machine answers `/healthz`: the
    /// container's health check, which has no curl.
    Healthcheck(BoardHealthcheckArgs),

    /// Read a password on standard input and print its argon2 hash, as the
    /// members file's `password_hash` holds it.
    HashPassword,

    /// Fill a database with generated offers, for benchmarks.
    #[command(hide = true)]
    Seed(BoardSeedArgs),
}

/// Arguments of `voisin board serve`.
#[derive(Debug, Args)]
pub struct BoardServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "VOISIN_BOARD_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: std::net::SocketAddr,

    /// The database file; created when missing.
    #[arg(long, env = "VOISIN_BOARD_DATABASE", value_name = "PATH")]
    pub database: PathBuf,

    /// The address members reach the board at, like `https://pret.example.org`;
    /// cookies are `Secure` when it starts with `https`.
    #[arg(
        long,
        env = "VOISIN_BOARD_PUBLIC_URL",
        default_value = "http://localhost:8080"
    )]
    pub public_url: String,

    /// Language of pages and mails: `fr` or `en`.
    #[arg(long, env = "VOISIN_BOARD_LOCALE", default_value = "en")]
    pub locale: String,

    /// The association's name, shown on every page.
    #[arg(long, env = "VOISIN_BOARD_ASSOCIATION", default_value = "voisin")]
    pub association: String,

    /// Categories offers are filed under, comma-separated.
    #[arg(
        long,
        env = "VOISIN_BOARD_CATEGORIES",
        default_value = "books,films,tools,games,services"
    )]
    pub categories: String,

    /// How long a loan lasts when the borrower names no end date, like `21d`.
    #[arg(long, env = "VOISIN_BOARD_LOAN_PERIOD", default_value = "21d")]
    pub loan_period: String,

    /// How long before the due date the borrower is reminded, like `2d`.
    #[arg(long, env = "VOISIN_BOARD_REMINDER_BEFORE", default_value = "2d")]
    pub reminder_before: String,

    /// Largest photo a member can attach to an offer, like `5 MB`.
    #[arg(long, env = "VOISIN_BOARD_PHOTO_MAX_SIZE", default_value = "5 MB")]
    pub photo_max_size: String,

    /// The association's SMTP server; without it, mails wait in the queue.
    #[arg(long, env = "VOISIN_BOARD_SMTP_HOST")]
    pub smtp_host: Option<String>,

    /// The SMTP server's port (default: 25, 587 with `starttls`, 465 with `tls`).
    #[arg(long, env = "VOISIN_BOARD_SMTP_PORT")]
    pub smtp_port: Option<u16>,

    /// The SMTP user name, when the server asks for one.
    #[arg(long, env = "VOISIN_BOARD_SMTP_USER")]
    pub smtp_user: Option<String>,

    /// A file holding the SMTP password (never the password itself, so it
    /// stays out of process listings).
    #[arg(long, env = "VOISIN_BOARD_SMTP_PASSWORD_FILE", value_name = "FILE")]
    pub smtp_password_file: Option<PathBuf>,

    /// The address mails come from.
    #[arg(long, env = "VOISIN_BOARD_SMTP_FROM")]
    pub smtp_from: Option<String>,

    /// How to secure the SMTP connection: `none`, `starttls` or `tls`.
    #[arg(long, env = "VOISIN_BOARD_SMTP_TLS", default_value = "starttls")]
    pub smtp_tls: String,

    /// The members file (JSON) rendered from the manifest; synced at every start.
    #[arg(long, env = "VOISIN_BOARD_MEMBERS_FILE", value_name = "FILE")]
    pub members_file: Option<PathBuf>,

    /// The reverse proxy in front of the board: addresses or subnets, like
    /// `10.213.7.0/24`, comma-separated. Only a peer in them may say who
    /// the client is (`X-Forwarded-For`); by default no peer may.
    #[arg(
        long,
        env = "VOISIN_BOARD_TRUSTED_PROXY",
        default_value = "",
        value_name = "SUBNETS"
    )]
    pub trusted_proxy: String,

    /// How long a client may take to send a request's headers, and between
    /// two reads of its body, like `15s`; slower clients are cut off.
    #[arg(long, env = "VOISIN_BOARD_READ_TIMEOUT", default_value = "15s")]
    pub read_timeout: String,

    /// Connections one client address may hold open at once (the trusted
    /// proxy is not counted).
    #[arg(
        long,
        env = "VOISIN_BOARD_MAX_CONNECTIONS_PER_CLIENT",
        default_value_t = 32
    )]
    pub max_connections_per_client: usize,
}

/// Arguments of `voisin board backup`.
#[derive(Debug, Args)]
pub struct BoardBackupArgs {
    /// The board's database file.
    #[arg(long, env = "VOISIN_BOARD_DATABASE", value_name = "PATH")]
    pub database: PathBuf,

    /// Where to write the snapshot; `-` writes it to standard output.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Arguments of `voisin board restore`.
#[derive(Debug, Args)]
pub struct BoardRestoreArgs {
    /// The board's database file, replaced whole.
    #[arg(long, env = "VOISIN_BOARD_DATABASE", value_name = "PATH")]
    pub database: PathBuf,

    /// The snapshot to restore; `-` reads it from standard input.
    #[arg(long = "in", value_name = "FILE")]
    pub input: PathBuf,
}

/// Arguments of `voisin board healthcheck`.
#[derive(Debug, Args)]
pub struct BoardHealthcheckArgs {
    /// The address the board listens on; an unspecified address
    /// (`0.0.0.0`) is checked on loopback.
    #[arg(long, env = "VOISIN_BOARD_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: std::net::SocketAddr,
}

/// Arguments of `voisin board seed`.
#[derive(Debug, Args)]
pub struct BoardSeedArgs {
    /// The database file to fill; created when missing.
    #[arg(long, value_name = "PATH")]
    pub database: PathBuf,

    /// How many offers to add.
    #[arg(long, default_value_t = 5000)]
    pub offers: u32,

    /// Categories to spread the offers over, comma-separated.
    #[arg(long, default_value = "books,films,tools,games,services")]
    pub categories: String,
}

/// `voisin schedule …`
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Install the routine: systemd timers (as root in
    /// `/etc/systemd/system`, else the user's own), or a cron file where
    /// systemd does not run. Installing again replaces what was installed.
    Install(ScheduleInstallArgs),
    /// Remove every timer, service or cron line `install` wrote.
    Remove(ScheduleWhereArgs),
    /// What is installed, and how each job last ended.
    Show(ScheduleWhereArgs),
    /// Run one job of the routine and record how it ended (what the timers
    /// and cron lines run).
    #[command(hide = true)]
    Run {
        /// `backup`, `verify` or `watch`.
        job: String,
    },
}

/// Where the routine is installed.
#[derive(Debug, Args)]
pub struct ScheduleWhereArgs {
    /// `systemd` or `cron` [default: systemd where it runs (`/run/systemd/system`), else cron].
    #[arg(long, value_enum)]
    pub with: Option<Scheduler>,

    /// Install for the current user (`systemctl --user`, the user's
    /// crontab) even as root; always so for other users.
    #[arg(long)]
    pub user: bool,

    /// Write the unit files (or the cron file) into DIR instead of the
    /// system's place, and run neither `systemctl` nor `crontab`: for
    /// packaging, and for tests.
    #[arg(long, value_name = "DIR", env = "VOISIN_SCHEDULE_DIR")]
    pub dir: Option<PathBuf>,
}

/// Arguments of `voisin schedule install`.
#[derive(Debug, Args)]
pub struct ScheduleInstallArgs {
    /// Where.
    #[command(flatten)]
    pub target: ScheduleWhereArgs,

    /// Print the unit files (or cron lines) and install nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// What runs the routine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scheduler {
    /// systemd timers.
    Systemd,
    /// cron.
    Cron,
}

/// Arguments of `voisin doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Ask this DNS server (like `192.0.2.53:53`) instead of the system's
    /// resolvers.
    #[arg(long, value_name = "IP:PORT")]
    pub resolver: Option<std::net::SocketAddr>,
}
