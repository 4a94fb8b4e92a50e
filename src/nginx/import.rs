//! `scimitar import nginx FILE [-o OUT] [--allow-partial]`: the command around
//! [`super::translate`]. The YAML goes to OUT (or stdout), the report to stderr.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::translate::{exit_code, translate};

pub const USAGE: &str = "\
usage: scimitar import nginx FILE [-o OUT] [--allow-partial]

Translates the nginx configuration FILE (with its includes) into a scimitar YAML config,
written to OUT (default: stdout), with a `# from FILE:LINE` comment above each part.
Every directive that was not translated, or was translated with a difference, is listed on
stderr as `file:line: directive — not translated: why`.

exit status:
  0  everything that changes request handling was translated (or --allow-partial)
  1  something that changes request handling was not translated (the YAML is still written)
  2  FILE cannot be read or parsed (the message names the file and line), or OUT cannot be written
";

struct Args {
    file: PathBuf,
    out: Option<PathBuf>,
    allow_partial: bool,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        Some("nginx") => {}
        Some("-h" | "--help") => return Err(String::new()),
        Some(other) => return Err(format!("cannot import `{other}`; only `nginx` is known")),
        None => return Err("say what to import: `scimitar import nginx FILE`".into()),
    }
    let (mut file, mut out, mut allow_partial) = (None, None, false);
    while let Some(a) = it.next() {
        match a.as_str() {
            "-o" | "--output" => {
                let v = it.next().ok_or("`-o` needs a file name")?;
                out = Some(PathBuf::from(v));
            }
            "--allow-partial" => allow_partial = true,
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with('-') && s != "-" => return Err(format!("unknown option `{s}`")),
            s if file.is_none() => file = Some(PathBuf::from(s)),
            s => return Err(format!("one FILE only (`{s}` is a second)")),
        }
    }
    Ok(Args {
        file: file.ok_or("give the nginx configuration file: `scimitar import nginx /etc/nginx/nginx.conf`")?,
        out,
        allow_partial,
    })
}

/// Runs the command; returns the exit status.
pub fn run(args: &[String]) -> u8 {
    let a = match parse_args(args) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            print!("{USAGE}");
            return 0;
        }
        Err(e) => {
            eprintln!("scimitar import: {e}\n\n{USAGE}");
            return 2;
        }
    };
    // Absolute, so every position names its file the same way and the report can show it
    // relative to nginx's prefix, the main file's directory (also what relative paths resolve
    // against).
    let file = std::path::absolute(&a.file).unwrap_or_else(|_| a.file.clone());
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let top = match super::parse_file(&file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("scimitar import nginx: {e}");
            return 2;
        }
    };
    let t = translate(&top, &base);
    let written = match &a.out {
        Some(path) => std::fs::write(path, &t.yaml).map_err(|e| format!("cannot write {}: {e}", path.display())),
        None => std::io::stdout()
            .write_all(t.yaml.as_bytes())
            .map_err(|e| format!("cannot write the YAML: {e}")),
    };
    if let Err(e) = written {
        eprintln!("scimitar import nginx: {e}");
        return 2;
    }
    for line in t.report_lines(&base) {
        eprintln!("{line}");
    }
    let dropped = t
        .notes
        .iter()
        .filter(|n| matches!(n.kind, super::translate::Kind::Dropped { .. }))
        .count();
    let handling = t.notes.iter().filter(|n| n.changes_handling()).count();
    let code = exit_code(&t.notes, a.allow_partial);
    eprintln!(
        "scimitar import nginx: {} → {}: {dropped} not translated ({handling} changing request handling), {} translated with a difference{}",
        a.file.display(),
        a.out.as_ref().map_or("stdout".to_string(), |p| p.display().to_string()),
        t.notes.len() - dropped,
        match (handling, a.allow_partial) {
            (0, _) => String::new(),
            (_, true) => "; accepted with --allow-partial".to_string(),
            (_, false) => "; review them, then rerun with --allow-partial to accept".to_string(),
        }
    );
    code
}
