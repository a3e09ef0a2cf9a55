//! `tandem certs create`: a cluster CA and one certificate per process (I1), for the
//! `--cluster-ca`, `--cluster-cert` and `--cluster-key` flags of every role.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use tandem_runtime::tls::{NodeSpec, generate_cluster};

/// `tandem certs ...`.
#[derive(Subcommand, Debug)]
pub enum CertsCommand {
    /// Make a new cluster CA (ca.pem, ca.key) and a certificate and key (NAME.pem, NAME.key)
    /// for each process listed.
    Create(CreateArgs),
}

/// Options of `tandem certs create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Directory to write into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The processes, comma-separated, each FILE=ROLE@HOST:PORT for a node (ROLE viewservice
    /// or server, HOST:PORT its advertised address) or FILE=ROLE[@NAME] for a coordinator or
    /// an operator tool (ROLE coordinator or admin; NAME defaults to FILE). Example:
    /// vs1=viewservice@10.0.0.1:7000,s1=server@10.0.0.2:7100,c1=coordinator,ops=admin
    #[arg(long, value_name = "SPEC,...", value_delimiter = ',', required = true)]
    nodes: Vec<String>,
    /// Extra DNS names or IP addresses put in every certificate (e.g. the coordinator's
    /// public name, so its certificate can also serve Redis clients over TLS).
    #[arg(long, value_name = "HOST,...", value_delimiter = ',')]
    hosts: Vec<String>,
    /// Validity in days.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    days: u32,
    /// Replace existing files.
    #[arg(long)]
    force: bool,
    /// Write ca.key into this directory instead of --out (keep it away from the nodes).
    #[arg(long, value_name = "DIR")]
    ca_key_dir: Option<PathBuf>,
    /// Do nothing, successfully, when --out already holds ca.pem (a one-shot container that
    /// runs at every start).
    #[arg(long, conflicts_with = "force")]
    keep_existing: bool,
}

/// Runs a `certs` subcommand.
pub fn run(command: CertsCommand) -> anyhow::Result<ExitCode> {
    match command {
        CertsCommand::Create(args) => create(args),
    }
}

fn create(args: CreateArgs) -> anyhow::Result<ExitCode> {
    if args.keep_existing && args.out.join("ca.pem").exists() {
        println!(
            "{} already holds ca.pem: nothing written",
            args.out.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut specs = Vec::new();
    for entry in &args.nodes {
        let mut spec = NodeSpec::parse(entry.trim()).context("--nodes")?;
        spec.hosts = args.hosts.iter().map(|h| h.trim().to_owned()).collect();
        if specs.iter().any(|s: &NodeSpec| s.file == spec.file) {
            anyhow::bail!("--nodes: {} is listed twice", spec.file);
        }
        specs.push(spec);
    }
    let certs = generate_cluster(&specs, args.days)?;
    let ca_key_dir = args.ca_key_dir.as_deref().unwrap_or(&args.out);
    let written = certs.write_split(&args.out, ca_key_dir, args.force)?;
    for spec in &specs {
        println!("{:<16} {}", spec.file, spec.principal.uri());
    }
    println!(
        "wrote {} files to {} (keep ca.key offline; *.key are mode 0600)",
        written.len(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
