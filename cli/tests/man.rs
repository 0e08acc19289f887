//! The syscontainer(1) page that `syscontainer generate-man DIR` (`make man`)
//! writes from the clap definitions: it formats without a warning from
//! groff (through `man -l`), and it documents what the hand-written page
//! had fallen behind on.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_syscontainer");

/// The page as `man` shows it (plain text), with groff's warnings on.
fn formatted(page: &Path) -> String {
    let out = Command::new("man")
        .args(["--warnings=all", "-E", "ascii", "-l"])
        .arg(page)
        .env("MANWIDTH", "100")
        .env("MAN_KEEP_FORMATTING", "0")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .expect("running man (Debian package man-db)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "man -l {}: {stderr}", page.display());
    assert!(
        stderr.trim().is_empty(),
        "groff warns about the page:\n{stderr}"
    );
    // Plain text even if man keeps overstrikes: drop "X\bX" and "_\bX".
    let raw = String::from_utf8(out.stdout).unwrap();
    let mut text = String::new();
    for c in raw.chars() {
        if c == '\u{8}' {
            text.pop();
        } else {
            text.push(c);
        }
    }
    text
}

/// The text of the subsection `syscontainer NAME...` (up to the next one).
fn subsection<'a>(text: &'a str, name: &str) -> &'a str {
    let head = format!("\n   {name}\n");
    let start = text
        .find(&head)
        .unwrap_or_else(|| panic!("no subsection '{name}' in the page:\n{text}"));
    let rest = &text[start + head.len()..];
    let end = rest.find("\n   syscontainer ").unwrap_or(rest.len());
    &rest[..end]
}

#[test]
fn generated_page_is_complete_and_clean() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("generate-man")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "generate-man: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = dir.path().join("syscontainer.1");
    let src = std::fs::read_to_string(&page).unwrap();
    assert!(src.contains(".TH SYSCONTAINER 1"), "{src}");
    // Nothing else is left in the directory (the temp file was renamed).
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["syscontainer.1"]);

    let text = formatted(&page);
    for s in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS"] {
        assert!(
            text.contains(&format!("\n{s}\n")),
            "no {s} section:\n{text}"
        );
    }
    for s in ["EXIT STATUS", "ENVIRONMENT", "FILES", "SEE ALSO"] {
        assert!(
            text.contains(&format!("\n{s}\n")),
            "no {s} section:\n{text}"
        );
    }
    // The global options, once.
    assert!(text.contains("--root <ROOT>") && text.contains("-v, --verbose"));
    let pull = subsection(&text, "syscontainer pull");
    for opt in ["--creds", "--tls-verify", "--authfile", "--json", "SOURCE"] {
        assert!(pull.contains(opt), "pull lacks {opt}:\n{pull}");
    }
    assert!(!pull.contains("--root"), "global options repeated:\n{pull}");
    // The source table of `pull` keeps its lines.
    assert!(
        pull.lines()
            .any(|l| l.trim_start().starts_with("dockertar:/path/file.tar")),
        "{pull}"
    );
    let verify = subsection(&text, "syscontainer containers verify");
    assert!(
        verify.contains("--json") && verify.contains("NAME"),
        "{verify}"
    );
    let install = subsection(&text, "syscontainer install");
    for opt in ["--creds", "--tls-verify", "--set", "--now", "--no-enable"] {
        assert!(install.contains(opt), "install lacks {opt}:\n{install}");
    }
    for cmd in [
        "images list",
        "images verify",
        "images prune",
        "containers update",
        "containers rollback",
        "uninstall",
        "enable",
        "disable",
    ] {
        subsection(&text, &format!("syscontainer {cmd}"));
    }
    // The exit codes and variables of `--help`, as lists.
    let exit = &text[text.find("\nEXIT STATUS\n").unwrap()..];
    assert!(exit.contains("usage error"), "{exit}");
    assert!(
        text.contains("SYSCONTAINER_MAX_LAYER_BYTES") && text.contains("ATOMIC_OSTREE_REPO"),
        "{text}"
    );
    // Every variable the CLI reads (its settings table), each an item.
    let env = &text[text.find("\nENVIRONMENT\n").unwrap()..text.find("\nFILES\n").unwrap()];
    for var in [
        "SYSCONTAINER_ROOT",
        "SYSCONTAINER_LOG",
        "ATOMIC_OSTREE_REPO",
        "ATOMIC_OSTREE_CHECKOUT_PATH",
        "SYSCONTAINER_CHECKOUT",
        "SYSCONTAINER_MAX_LAYER_ENTRIES",
        "SYSCONTAINER_MAX_LAYER_BYTES",
        "SYSCONTAINER_MAX_SPARSE_RATIO",
        "SYSCONTAINER_SPEED_LIMIT",
        "SYSCONTAINER_SPEED_TIME",
        "DOCKER_HOST",
        "XDG_RUNTIME_DIR",
        "XDG_CONFIG_HOME",
        "HOME",
    ] {
        assert!(
            env.lines()
                .any(|l| l.split_whitespace().next() == Some(var)),
            "ENVIRONMENT lacks {var}:\n{env}"
        );
    }
    // The hidden command stays hidden; no help subcommand.
    assert!(!text.contains("generate-man"), "{text}");
    assert!(!text.contains("syscontainer help"), "{text}");
}
