//! `syscontainer`. (deploy branch: only the container commands are wired in;
//! the store branch's main.rs replaces this file.)

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use syscontainer::paths::Root;

mod containers;

#[derive(Debug, Parser)]
#[command(
    name = "syscontainer",
    version,
    about = "System containers in OSTree, run by runc under systemd"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    #[command(flatten)]
    Container(containers::ContainerCmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = Root::from_env();
    let res = match cli.cmd {
        Cmd::Container(c) => containers::run(c, &root),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
