//! `netpol completions` and `netpol man`: generated from the clap
//! definitions, so they never fall out of step with the flags.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;
use clap_complete::Shell;

use crate::ExitCode;

/// Arguments of `netpol completions`.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  netpol completions bash > ~/.local/share/bash-completion/completions/netpol
  netpol completions zsh > \"${fpath[1]}/_netpol\"
  netpol completions fish > ~/.config/fish/completions/netpol.fish
  netpol completions powershell >> $PROFILE")]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum, value_name = "SHELL")]
    shell: Shell,
}

/// Arguments of `netpol man`.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  netpol man | man -l -                      # read it now
  netpol man --dir /usr/local/share/man/man1 # install netpol.1 and netpol-<command>.1")]
pub struct ManArgs {
    /// Write netpol.1 and one page per command (netpol-query.1, ...) into
    /// this directory instead of printing netpol.1.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub fn completions(args: CompletionsArgs) -> ExitCode {
    // The script completes the `netpol` binary; kubectl completes plugin
    // names itself.
    let mut command = crate::cli_command(false);
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut command, "netpol", &mut out);
    match out.flush() {
        Ok(()) => ExitCode::Success,
        Err(error) => crate::fail(&format!("cannot write the completion script: {error}")),
    }
}

pub fn man(args: ManArgs, as_kubectl_plugin: bool) -> ExitCode {
    let mut command = crate::cli_command(as_kubectl_plugin);
    command.build();
    let Some(dir) = args.dir else {
        let mut out = std::io::stdout().lock();
        return match clap_mangen::Man::new(command)
            .render(&mut out)
            .and_then(|()| out.flush())
        {
            Ok(()) => ExitCode::Success,
            Err(error) => crate::fail(&format!("cannot write the man page: {error}")),
        };
    };
    if let Err(error) = std::fs::create_dir_all(&dir) {
        return crate::fail(&format!("{}: {error}", dir.display()));
    }
    let mut pages = vec![("netpol".to_string(), command.clone())];
    for sub in command.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let name = format!("netpol-{}", sub.get_name());
        let page = sub
            .clone()
            .name(name.clone())
            .version(env!("CARGO_PKG_VERSION"));
        pages.push((name, page));
    }
    for (name, page) in pages {
        let path = dir.join(format!("{name}.1"));
        let mut text = Vec::new();
        let written = clap_mangen::Man::new(page)
            .render(&mut text)
            .and_then(|()| std::fs::write(&path, text));
        if let Err(error) = written {
            return crate::fail(&format!("{}: {error}", path.display()));
        }
        eprintln!("wrote {}", path.display());
    }
    ExitCode::Success
}
