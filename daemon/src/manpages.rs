//! Man pages generated from a command-line definition (clap), one per command and subcommand:
//! `vigil.1`, `vigil-run.1`, ... The package build writes them with the hidden
//! `vigil manpages DIR` (and `vigil-sim manpages DIR`).

use std::path::Path;

/// Writes `NAME.1` for `cmd` and `NAME-SUB.1` for each visible subcommand into `dir`.
pub fn write(cmd: clap::Command, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let cmd = cmd.disable_help_subcommand(true);
    let name = cmd.get_name().to_string();
    let mut pages = vec![(name.clone(), cmd.clone())];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let full = format!("{name}-{}", sub.get_name());
        pages.push((
            full.clone(),
            sub.clone()
                .display_name(full)
                .bin_name(format!("{name} {}", sub.get_name())),
        ));
    }
    for (file, page) in pages {
        let mut out = Vec::new();
        clap_mangen::Man::new(page).render(&mut out)?;
        std::fs::write(dir.join(format!("{file}.1")), out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    #[test]
    fn a_page_per_visible_subcommand_naming_its_options() {
        let dir = std::env::temp_dir().join(format!("vigil-man-{}", std::process::id()));
        let cmd = Command::new("tool")
            .subcommand(Command::new("run").arg(Arg::new("config").long("config")))
            .subcommand(Command::new("secret").hide(true));
        write(cmd, &dir).unwrap();
        let run = std::fs::read_to_string(dir.join("tool-run.1")).unwrap();
        assert!(run.contains("tool\\-run"), "{run}");
        assert!(run.contains("config"), "{run}");
        assert!(dir.join("tool.1").exists());
        assert!(!dir.join("tool-secret.1").exists());
    }
}
