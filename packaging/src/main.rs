//! Writes the man page (`wopigate.1`) and the bash, zsh and fish completions of the `wopigate`
//! command into a folder, from the same clap definition the binary parses its arguments with.
//! `scripts/package-deb.sh` runs it before `cargo deb`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap_complete::Shell;

fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: wopigate-package-assets <output folder>");
        return ExitCode::FAILURE;
    };
    match write(&out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot write the package assets to {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}

fn write(out: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    let command = wopigate::cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut page)?;
    std::fs::write(out.join("wopigate.1"), page)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut command.clone(), "wopigate", out)?;
    }
    Ok(())
}
