//! Keeps the deployment guide and its files honest.
//!
//! Every `strongroom`, `strongroom-proxy` and `strongroom-enclave` command line in
//! `docs/deploy.md` (code blocks, and inline code that starts with a program's name) and in
//! the `Exec*=` lines of `deploy/systemd/*.service` names only subcommands and long flags
//! the program has, as its `--help` for that subcommand path shows them (clap's own
//! rendering of its definitions, from the binaries the workspace build made). Environment
//! variables — `deploy/proxy.env.example`'s, every `STRONGROOM_*` the guide mentions, and
//! the guide's variable-to-flag table — must be ones the programs read. `make` targets must
//! be in the Makefile. `deploy/genesis.example.json` must be a genesis document the enclave
//! accepts, and the guide's transition key policy (`strongroom kms-policy` with the old and
//! the new release's `--pcrs`) must, evaluated by the mock KMS, release the root key to the
//! old and the new release's PCRs and to nothing else. The enclave unit's
//! `strongroom-enclave-run` restarts a dead enclave (against a stand-in `nitro-cli`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::rc::Rc;

use strongroom_e2e::{bin_dir, repo, temp_data, wait_exit};

/// The programs whose command lines are checked.
const PROGRAMS: [&str; 3] = ["strongroom", "strongroom-proxy", "strongroom-enclave"];

/// Environment variables the programs read other than through clap: (name, the source file
/// that reads it, what in that file shows it does).
const NON_CLAP_ENV: &[(&str, &str, &str)] = &[
    // tracing's EnvFilter, in the proxy and the enclave.
    (
        "RUST_LOG",
        "parent-proxy/src/main.rs",
        "EnvFilter::try_from_default_env",
    ),
    // The CLI's principal key, when --principal-key is not given.
    (
        "STRONGROOM_PRINCIPAL_KEY",
        "cli/src/principal.rs",
        "\"STRONGROOM_PRINCIPAL_KEY\"",
    ),
];

/// Whether a program reads `name` other than through clap (and its source still says so).
fn non_clap_env(name: &str) -> bool {
    NON_CLAP_ENV.iter().any(|(var, file, needle)| {
        *var == name && {
            let source = read(file);
            assert!(
                source.contains(needle),
                "{file} no longer shows that it reads {var}; update NON_CLAP_ENV"
            );
            true
        }
    })
}

/// What a program's `--help` shows for one subcommand path.
#[derive(Debug, Default)]
struct Help {
    /// Long flags, each with whether it takes a value and its environment variable.
    flags: BTreeMap<String, Flag>,
    /// Subcommand names and visible aliases.
    subcommands: BTreeSet<String>,
}

#[derive(Debug, Default, Clone)]
struct Flag {
    takes_value: bool,
    env: Option<String>,
}

/// Parses clap's long help (`--help`): the `Commands:` section and every option block.
fn parse_help(text: &str) -> Help {
    let mut help = Help::default();
    let mut in_commands = false;
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            in_commands = false;
            continue;
        }
        if !line.starts_with(' ') {
            in_commands = line.trim_end() == "Commands:";
            current = None;
            continue;
        }
        if in_commands {
            let mut words = line.split_whitespace();
            if let Some(name) = words.next() {
                help.subcommands
                    .insert(name.trim_end_matches(',').to_string());
            }
            for list in ["[aliases: ", "[alias: "] {
                if let Some(rest) = line.split(list).nth(1) {
                    for alias in rest.trim_end_matches(']').split(',') {
                        help.subcommands.insert(alias.trim().to_string());
                    }
                }
            }
            continue;
        }
        let trimmed = line.trim_start();
        let flag_part = match trimmed.strip_prefix('-') {
            // `-h, --help` or `--name …`
            Some(rest) if !rest.starts_with('-') => rest.split_once(", ").map(|(_, f)| f),
            Some(_) => Some(trimmed),
            None => None,
        };
        if let Some(flag) = flag_part.and_then(|f| f.strip_prefix("--")) {
            let end = flag
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .unwrap_or(flag.len());
            let (name, rest) = flag.split_at(end);
            let takes_value =
                rest.starts_with(" <") || rest.starts_with("=<") || rest.starts_with(" [");
            help.flags.insert(
                name.to_string(),
                Flag {
                    takes_value,
                    env: None,
                },
            );
            current = Some(name.to_string());
            continue;
        }
        if let (Some(name), Some(rest)) = (&current, trimmed.split("[env: ").nth(1)) {
            let var = rest.split('=').next().unwrap_or_default().to_string();
            if let Some(flag) = help.flags.get_mut(name) {
                flag.env = Some(var);
            }
        }
    }
    help
}

/// A program and a subcommand path.
type HelpKey = (String, Vec<String>);

/// `--help` of each program and subcommand path, run once each.
struct Programs {
    dir: PathBuf,
    /// `None`: no such subcommand path.
    cache: RefCell<HashMap<HelpKey, Option<Rc<Help>>>>,
}

impl Programs {
    fn new() -> Self {
        Self {
            dir: bin_dir(),
            cache: RefCell::default(),
        }
    }

    /// The help of `program path… --help`, or `None` if that subcommand path does not exist.
    fn help(&self, program: &str, path: &[String]) -> Option<Rc<Help>> {
        let key = (program.to_string(), path.to_vec());
        if let Some(h) = self.cache.borrow().get(&key) {
            return h.clone();
        }
        let out = Command::new(self.dir.join(program))
            .args(path)
            .arg("--help")
            .env_clear()
            .output()
            .unwrap_or_else(|e| panic!("running {program}: {e}"));
        let help = out
            .status
            .success()
            .then(|| Rc::new(parse_help(&String::from_utf8_lossy(&out.stdout))));
        self.cache.borrow_mut().insert(key, help.clone());
        help
    }

    /// Every environment variable any program reads through clap.
    fn all_env(&self) -> BTreeSet<String> {
        let mut env = BTreeSet::new();
        for program in PROGRAMS {
            self.collect_env(program, &mut Vec::new(), &mut env);
        }
        env
    }

    fn collect_env(&self, program: &str, path: &mut Vec<String>, env: &mut BTreeSet<String>) {
        let Some(help) = self.help(program, path) else {
            return;
        };
        env.extend(help.flags.values().filter_map(|f| f.env.clone()));
        for sub in &help.subcommands {
            // `help` is clap's; aliases repeat their command.
            if sub != "help" && !path.contains(sub) && path.len() < 3 {
                path.push(sub.clone());
                self.collect_env(program, path, env);
                path.pop();
            }
        }
    }

    /// Checks one command line (`words` after the program's name); returns what is wrong.
    fn check(&self, program: &str, words: &[String]) -> Vec<String> {
        let mut errors = Vec::new();
        let mut path: Vec<String> = Vec::new();
        let mut help = self
            .help(program, &path)
            .unwrap_or_else(|| panic!("{program} --help failed"));
        let mut i = 0;
        while i < words.len() {
            // `[--flag VALUE]`: an optional flag in a synopsis.
            let word = words[i].trim_start_matches('[').trim_end_matches(']');
            i += 1;
            if let Some(flag) = word.strip_prefix("--") {
                let (name, inline_value) = match flag.split_once('=') {
                    Some((n, _)) => (n, true),
                    None => (flag, false),
                };
                match help.flags.get(name) {
                    Some(f) => {
                        if f.takes_value && !inline_value {
                            i += 1;
                        }
                    }
                    None => {
                        errors.push(format!("`{}` has no flag --{name}", shown(program, &path)))
                    }
                }
                continue;
            }
            if word.starts_with('-') && word.len() > 1 {
                continue; // short flags: -h, -V
            }
            if help.subcommands.is_empty() {
                continue; // a positional argument
            }
            if help.subcommands.contains(word) {
                path.push(word.to_string());
                help = self
                    .help(program, &path)
                    .unwrap_or_else(|| panic!("{program} {} --help failed", path.join(" ")));
                continue;
            }
            errors.push(format!(
                "`{}` has no subcommand {word:?}",
                shown(program, &path)
            ));
            return errors;
        }
        errors
    }
}

/// `program subcommand…`, for messages.
fn shown(program: &str, path: &[String]) -> String {
    std::iter::once(program.to_string())
        .chain(path.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The fenced code blocks of a Markdown document (fences may be indented, in list items).
fn code_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            match current.take() {
                Some(lines) => blocks.push(lines.join("\n")),
                None => current = Some(Vec::new()),
            }
        } else if let Some(lines) = &mut current {
            lines.push(line);
        }
    }
    blocks
}

/// The inline code spans of the Markdown text outside code blocks.
fn inline_spans(markdown: &str) -> Vec<String> {
    let mut spans = Vec::new();
    let mut in_block = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if !in_block {
            spans.extend(line.split('`').skip(1).step_by(2).map(str::to_string));
        }
    }
    spans
}

/// A shell-ish token.
#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    /// A command ends: newline, `;`, `|`, `&`, `&&`, `||`, `(`, `)`, `$(`, `<(`.
    End,
}

/// Splits shell text into words and command boundaries. Quotes are removed (their content
/// is one word, across lines too); `#` comments, redirections with their targets, and
/// here-document bodies are dropped; `\` at the end of a line joins it with the next.
fn tokenize(text: &str) -> Vec<Token> {
    // Here-document bodies first: from a line with `<<WORD` to the line `WORD`.
    let mut lines = Vec::new();
    let mut heredoc: Option<String> = None;
    for line in text.lines() {
        if let Some(end) = &heredoc {
            if line.trim() == end {
                heredoc = None;
            }
            continue;
        }
        if let Some(rest) = line.split("<<").nth(1) {
            let word: String = rest
                .trim_start_matches('-')
                .trim_start()
                .chars()
                .filter(|c| *c != '\'' && *c != '"')
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !word.is_empty() {
                heredoc = Some(word);
            }
        }
        lines.push(line);
    }
    let text = lines.join("\n").replace("\\\n", " ");

    let mut tokens = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut skip_next_word = false;
    let mut chars = text.chars().peekable();
    fn finish(word: &mut String, in_word: &mut bool, skip: &mut bool, tokens: &mut Vec<Token>) {
        if *in_word {
            if *skip {
                *skip = false;
            } else {
                tokens.push(Token::Word(std::mem::take(word)));
            }
            word.clear();
            *in_word = false;
        }
    }
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    if q == c {
                        break;
                    }
                    // `\"` inside double quotes.
                    if c == '"' && q == '\\' {
                        if let Some(escaped) = chars.next() {
                            word.push(escaped);
                        }
                        continue;
                    }
                    word.push(q);
                }
            }
            '#' if !in_word => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
                finish(&mut word, &mut in_word, &mut skip_next_word, &mut tokens);
                tokens.push(Token::End);
            }
            ' ' | '\t' => finish(&mut word, &mut in_word, &mut skip_next_word, &mut tokens),
            '\n' | ';' | '|' | '&' | '(' | ')' => {
                finish(&mut word, &mut in_word, &mut skip_next_word, &mut tokens);
                tokens.push(Token::End);
            }
            '$' if chars.peek() == Some(&'(') => {
                chars.next();
                finish(&mut word, &mut in_word, &mut skip_next_word, &mut tokens);
                tokens.push(Token::End);
            }
            '<' | '>' => {
                if c == '<' && chars.peek() == Some(&'(') {
                    chars.next();
                    finish(&mut word, &mut in_word, &mut skip_next_word, &mut tokens);
                    tokens.push(Token::End);
                    continue;
                }
                // `2>` and the like: the digits were the redirection's, not a word.
                if in_word && word.chars().all(|d| d.is_ascii_digit()) {
                    word.clear();
                    in_word = false;
                }
                finish(&mut word, &mut in_word, &mut skip_next_word, &mut tokens);
                while matches!(chars.peek(), Some('<' | '>' | '&')) {
                    chars.next();
                }
                skip_next_word = true;
            }
            _ => {
                in_word = true;
                word.push(c);
            }
        }
    }
    finish(&mut word, &mut in_word, &mut skip_next_word, &mut tokens);
    tokens
}

/// The commands of shell text: word lists with leading variable assignments, `sudo` and its
/// options, `exec`, `env` and `time` removed.
fn commands(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    for token in tokenize(text).into_iter().chain([Token::End]) {
        match token {
            Token::Word(w) => current.push(w),
            Token::End => {
                let words = std::mem::take(&mut current);
                let mut i = 0;
                while i < words.len() {
                    let w = &words[i];
                    let assignment = w.split_once('=').is_some_and(|(name, _)| {
                        !name.is_empty()
                            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    });
                    if assignment || ["exec", "env", "time", "$"].contains(&w.as_str()) {
                        i += 1;
                    } else if w == "sudo" {
                        i += 1;
                        while i < words.len() && words[i].starts_with('-') {
                            i += if ["-u", "-g"].contains(&words[i].as_str()) {
                                2
                            } else {
                                1
                            };
                        }
                    } else {
                        break;
                    }
                }
                if i < words.len() {
                    out.push(words[i..].to_vec());
                }
            }
        }
    }
    out
}

/// The checked program a command runs, if any: the basename of its first word (systemd's
/// `-@:+!` prefixes removed).
fn program_of(command: &[String]) -> Option<&'static str> {
    let first = command
        .first()?
        .trim_start_matches(['-', '@', ':', '+', '!']);
    let base = first.rsplit('/').next()?;
    PROGRAMS.into_iter().find(|p| *p == base)
}

/// The shell text of a unit file's `Exec*=` settings, one command a line.
fn unit_exec_lines(unit: &str) -> String {
    let joined = unit.replace("\\\n", " ");
    joined
        .lines()
        .filter(|l| l.starts_with("Exec"))
        .filter_map(|l| l.split_once('=').map(|(_, v)| v.to_string()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Checks every checked program's command line in `text`; returns (lines checked, errors).
fn check_text(programs: &Programs, source: &str, text: &str) -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut errors = Vec::new();
    for command in commands(text) {
        if let Some(program) = program_of(&command).filter(|_| command.len() > 1) {
            checked += 1;
            // Shown with --nocapture: what was checked.
            eprintln!("{source}: {}", command.join(" "));
            for e in programs.check(program, &command[1..]) {
                errors.push(format!("{source}: {e} (in: {})", command.join(" ")));
            }
        }
    }
    (checked, errors)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn report(errors: &[String]) {
    assert!(
        errors.is_empty(),
        "the deployment docs name things the programs do not have:\n{}",
        errors.join("\n")
    );
}

#[test]
fn deploy_md_command_lines_use_existing_subcommands_and_flags() {
    let programs = Programs::new();
    let doc = read("docs/deploy.md");
    let (mut checked, mut errors) = (0, Vec::new());
    for block in code_blocks(&doc) {
        let (n, e) = check_text(&programs, "docs/deploy.md", &block);
        checked += n;
        errors.extend(e);
    }
    let in_blocks = checked;
    for span in inline_spans(&doc) {
        let (n, e) = check_text(&programs, "docs/deploy.md (inline)", &span);
        checked += n;
        errors.extend(e);
    }
    eprintln!("checked {in_blocks} command lines in code blocks, {checked} in all");
    // The parser must keep finding the guide's commands, or this test would check nothing.
    assert!(
        in_blocks >= 20,
        "only {in_blocks} command lines found in code blocks"
    );
    report(&errors);
}

#[test]
fn unit_files_run_existing_flags() {
    let programs = Programs::new();
    let mut errors = Vec::new();
    let mut checked = 0;
    let dir = repo().join("deploy/systemd");
    let mut units: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "service"))
        .collect();
    units.sort();
    assert!(units.len() >= 2, "units in {}: {units:?}", dir.display());
    let all_env = programs.all_env();
    for unit in &units {
        let text = std::fs::read_to_string(unit).unwrap();
        let name = unit.file_name().unwrap().to_string_lossy().into_owned();
        let (n, e) = check_text(&programs, &name, &unit_exec_lines(&text));
        checked += n;
        errors.extend(e);
        for var in strongroom_vars(&text) {
            if !all_env.contains(&var) && !non_clap_env(&var) {
                errors.push(format!("{name}: no program reads {var}"));
            }
        }
    }
    let proxy = unit_exec_lines(&read("deploy/systemd/strongroom-proxy.service"));
    assert!(
        commands(&proxy)
            .iter()
            .any(|c| program_of(c) == Some("strongroom-proxy")),
        "strongroom-proxy.service does not run strongroom-proxy"
    );
    assert!(checked >= 1);
    report(&errors);
}

/// `STRONGROOM_*` names in a text.
fn strongroom_vars(text: &str) -> BTreeSet<String> {
    let mut vars = BTreeSet::new();
    for (i, _) in text.match_indices("STRONGROOM_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        vars.insert(name.trim_end_matches('_').to_string());
    }
    vars
}

#[test]
fn environment_variables_exist() {
    let programs = Programs::new();
    let proxy = programs.help("strongroom-proxy", &[]).unwrap();
    let proxy_env: BTreeMap<String, String> = proxy
        .flags
        .iter()
        .filter_map(|(name, f)| f.env.clone().map(|e| (e, name.clone())))
        .collect();
    let mut errors = Vec::new();

    // The proxy's environment file: every variable, set or commented out.
    let env_file = read("deploy/proxy.env.example");
    let mut seen = 0;
    for line in env_file.lines() {
        let line = line.trim().trim_start_matches('#').trim();
        let Some((name, _)) = line.split_once('=') else {
            continue;
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
            continue;
        }
        seen += 1;
        if !proxy_env.contains_key(name) && !non_clap_env(name) {
            errors.push(format!(
                "deploy/proxy.env.example: strongroom-proxy does not read {name}"
            ));
        }
    }
    assert!(
        seen >= 6,
        "only {seen} variables found in proxy.env.example"
    );

    // Every STRONGROOM_* variable the guide names is read by some program.
    let doc = read("docs/deploy.md");
    let all = programs.all_env();
    for var in strongroom_vars(&doc) {
        if !all.contains(&var) && !non_clap_env(&var) {
            errors.push(format!("docs/deploy.md: no program reads {var}"));
        }
    }

    // The guide's table of the proxy's variables: | `VAR` | `--flag` | …
    let mut rows = 0;
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(var), Some(flag)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        let (Some(var), Some(flag)) = (
            var.strip_prefix('`').and_then(|v| v.strip_suffix('`')),
            flag.strip_prefix("`--").and_then(|f| f.strip_suffix('`')),
        ) else {
            continue;
        };
        rows += 1;
        match proxy.flags.get(flag) {
            Some(f) if f.env.as_deref() == Some(var) => {}
            Some(f) => errors.push(format!(
                "docs/deploy.md table: strongroom-proxy --{flag} reads {:?}, not {var}",
                f.env
            )),
            None => errors.push(format!(
                "docs/deploy.md table: strongroom-proxy has no --{flag}"
            )),
        }
    }
    assert!(
        rows >= 6,
        "only {rows} rows of the proxy's variable table found"
    );
    report(&errors);
}

#[test]
fn make_targets_exist() {
    let makefile = read("Makefile");
    let targets: BTreeSet<&str> = makefile
        .lines()
        .filter(|l| !l.starts_with(['\t', '#', '.']))
        .filter_map(|l| l.split_once(':'))
        .filter(|(_, rest)| !rest.starts_with('='))
        .flat_map(|(names, _)| names.split_whitespace())
        .collect();
    let doc = read("docs/deploy.md");
    let mut errors = Vec::new();
    for block in code_blocks(&doc) {
        for command in commands(&block) {
            if command[0] != "make" {
                continue;
            }
            for target in command[1..]
                .iter()
                .filter(|w| !w.starts_with('-') && !w.contains('='))
            {
                if !targets.contains(target.as_str()) {
                    errors.push(format!("docs/deploy.md: no make target {target:?}"));
                }
            }
        }
    }
    report(&errors);
}

#[test]
fn a_bogus_flag_or_subcommand_is_caught() {
    let programs = Programs::new();
    let text = "strongroom --expect-pcrs m.json audit verify --no-such-flag\n\
                sudo strongroom-proxy --log-format json --no-such-proxy-flag \\\n  --db x\n\
                /strongroom-enclave --listen vsock:any:5000 --no-such-enclave-flag\n\
                strongroom keys no-such-subcommand\n";
    let (checked, errors) = check_text(&programs, "test", text);
    assert_eq!(checked, 4, "{errors:?}");
    assert_eq!(errors.len(), 4, "{errors:#?}");
    for expected in [
        "--no-such-flag",
        "--no-such-proxy-flag",
        "--no-such-enclave-flag",
        "no-such-subcommand",
    ] {
        assert!(errors.iter().any(|e| e.contains(expected)), "{errors:#?}");
    }
    let (_, errors) = check_text(
        &programs,
        "unit",
        &unit_exec_lines("ExecStart=-/usr/local/bin/strongroom-proxy \\\n  --listen-addr 1\n"),
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    // Values are skipped, comments and redirections are not words, good lines pass.
    let (checked, errors) = check_text(
        &programs,
        "test",
        "strongroom kms-policy --pcrs m.json --role R --admin-role A > p.json # --nope\n\
         diff <(strongroom --url http://x audit head) x.json && strongroom dev key --out k",
    );
    assert_eq!((checked, errors.len()), (3, 0), "{errors:?}");
}

#[test]
fn genesis_example_is_accepted_by_the_enclave() {
    let text = read("deploy/genesis.example.json");
    let genesis = strongroom_enclave::governance::Genesis::from_json(text.as_bytes())
        .unwrap_or_else(|e| panic!("deploy/genesis.example.json: {e}"));
    eprintln!(
        "deploy/genesis.example.json: genesis digest {}",
        hex::encode(genesis.digest())
    );
}

/// Runs the guide's `strongroom kms-policy` commands of the upgrade, with two releases'
/// measurements written where they name them and `$ROLE`, `$ADMIN` and `$AUDITOR` set, and evaluates
/// the policies with the mock KMS: the transition policy (two `--pcrs`) releases the root
/// key to the old and the new release and nothing else; the final one (the new release's
/// alone) to the new release only.
#[test]
fn upgrade_policies_allow_exactly_the_releases_they_name() {
    use strongroom_mock_kms::policy::{Policy, RequestContext};

    let doc = read("docs/deploy.md");
    let upgrade = &doc[doc
        .find("## Upgrades")
        .expect("the guide's Upgrades section")..];
    let upgrade = &upgrade[..upgrade[3..].find("\n## ").map_or(upgrade.len(), |n| n + 3)];
    let kms_policy_commands: Vec<Vec<String>> = code_blocks(upgrade)
        .iter()
        .flat_map(|b| commands(b))
        .filter(|c| c.len() > 2 && c[0] == "strongroom" && c[1] == "kms-policy")
        .collect();
    let pcrs_flags = |c: &Vec<String>| c.iter().filter(|w| *w == "--pcrs").count();
    let transition = kms_policy_commands
        .iter()
        .find(|c| pcrs_flags(c) == 2)
        .expect("the guide's transition policy (`strongroom kms-policy --pcrs old… --pcrs new…`)");
    let after = kms_policy_commands
        .iter()
        .find(|c| pcrs_flags(c) == 1)
        .expect("the guide's policy after the switch (`strongroom kms-policy --pcrs new…`)");

    let dir = temp_data("deploy-docs");
    let pcrs = |fill: u8| -> BTreeMap<u8, Vec<u8>> {
        (0..3u8)
            .map(|i| (i, vec![fill.wrapping_add(i); 48]))
            .collect()
    };
    let (old, new) = (pcrs(0x10), pcrs(0x80));
    for (release, pcrs) in [("old", &old), ("new", &new)] {
        let measurements: serde_json::Map<String, serde_json::Value> = pcrs
            .iter()
            .map(|(i, v)| (format!("PCR{i}"), hex::encode(v).into()))
            .collect();
        std::fs::create_dir_all(dir.join(release)).unwrap();
        let json = serde_json::json!({"Measurements": measurements});
        std::fs::write(
            dir.join(release).join("measurements.json"),
            json.to_string(),
        )
        .unwrap();
    }
    let role = "arn:aws:iam::111122223333:role/strongroom-parent";
    let admin = "arn:aws:iam::111122223333:role/strongroom-key-admin";
    let auditor = "arn:aws:iam::111122223333:role/strongroom-auditor";
    // Runs one of the guide's command lines in `dir` (where old/ and new/ are).
    let run = |command: &[String]| -> (String, Policy) {
        let args: Vec<&str> = command[1..]
            .iter()
            .map(|w| match w.as_str() {
                "$ROLE" => role,
                "$ADMIN" => admin,
                "$AUDITOR" => auditor,
                w => w,
            })
            .collect();
        let output = Command::new(bin_dir().join("strongroom"))
            .args(&args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}: {output:?}", command.join(" "));
        let text = String::from_utf8(output.stdout).unwrap();
        let policy = Policy::parse(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (text, policy)
    };
    let key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let allowed = |policy: &Policy, pcrs: &BTreeMap<u8, Vec<u8>>, action: &str| {
        policy
            .evaluate(action, key, &RequestContext::new().with_attestation(pcrs))
            .is_allowed()
    };

    let (text, policy) = run(transition);
    for action in ["kms:Decrypt", "kms:GenerateDataKey"] {
        assert!(
            allowed(&policy, &old, action),
            "old release refused: {text}"
        );
        assert!(
            allowed(&policy, &new, action),
            "new release refused: {text}"
        );
        // A mix of the two releases, or one PCR of a third: refused.
        for index in 0..3u8 {
            for (a, b) in [(&old, &new), (&new, &old)] {
                let mut mixed = a.clone();
                mixed.insert(index, b[&index].clone());
                assert!(
                    !allowed(&policy, &mixed, action),
                    "mixed PCR{index} allowed: {text}"
                );
            }
            let mut other = new.clone();
            other.insert(index, vec![0x42; 48]);
            assert!(
                !allowed(&policy, &other, action),
                "other PCR{index} allowed: {text}"
            );
        }
        assert!(
            !policy
                .evaluate(action, key, &RequestContext::new())
                .is_allowed(),
            "no attestation allowed: {text}"
        );
    }
    assert!(!allowed(&policy, &new, "kms:ReEncryptFrom"));
    assert!(!allowed(&policy, &old, "kms:ReEncryptTo"));
    // The key-admin statement is there, and gives no key material.
    assert!(text.contains("StrongroomKeyAdministration"), "{text}");
    assert!(text.contains("StrongroomKeyAudit\""), "{text}");

    let (text, policy) = run(after);
    assert!(
        after.iter().any(|w| w.starts_with("new/")),
        "the final policy must be the new release's: {}",
        after.join(" ")
    );
    for action in ["kms:Decrypt", "kms:GenerateDataKey"] {
        assert!(
            allowed(&policy, &new, action),
            "new release refused: {text}"
        );
        assert!(
            !allowed(&policy, &old, action),
            "old release still allowed: {text}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The settings the guide passes through the environment take effect there, and values out
/// of range are refused at start (exit 2, naming the variable's flag) rather than misread.
#[test]
fn environment_settings_are_read_and_checked() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let data = temp_data("env-settings");
    let socket = data.join("enclave.sock");
    let mut enclave = Command::new(bin_dir().join("strongroom-enclave"))
        .args(["--listen", &format!("unix:{}", socket.display()), "--nsm"])
        .arg(format!("mock:{}", data.join("nsm").display()))
        .env("STRONGROOM_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(enclave.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    enclave.kill().unwrap();
    enclave.wait().unwrap();
    let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| {
        panic!("STRONGROOM_LOG_FORMAT=json, not a JSON log line ({e}): {line}")
    });
    assert!(
        event["level"].is_string() && event["fields"]["message"].is_string(),
        "{event}"
    );

    for (program, var, value, flag) in [
        (
            "strongroom-enclave",
            "STRONGROOM_LOG_FORMAT",
            "yaml",
            "--log-format",
        ),
        (
            "strongroom-proxy",
            "STRONGROOM_LOG_FORMAT",
            "xml",
            "--log-format",
        ),
        (
            "strongroom-proxy",
            "STRONGROOM_ENCLAVE_CONNECTIONS",
            "0",
            "--enclave-connections",
        ),
        (
            "strongroom-proxy",
            "STRONGROOM_ENCLAVE_CONNECTIONS",
            "1025",
            "--enclave-connections",
        ),
    ] {
        let out = Command::new(bin_dir().join(program))
            .env(var, value)
            .env("STRONGROOM_DB", data.join("never.sqlite"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{program} {var}={value}: {err}");
        assert!(
            err.contains(flag) && err.contains(value),
            "{program} {var}={value}: {err}"
        );
    }
    assert!(!data.join("never.sqlite").exists());
    std::fs::remove_dir_all(&data).unwrap();
}

/// A stand-in `nitro-cli` (no Nitro hypervisor here) that records its calls in `calls` and
/// answers `describe-enclaves` in nitro-cli's documented shape from the file `state`
/// (absent: no enclave). `run-enclave` fails if `run-fails` exists.
const STAND_IN_NITRO_CLI: &str = r#"#!/bin/sh
d=$(dirname "$0")
echo "$*" >> "$d/calls"
case $1 in
  run-enclave)
    if [ -f "$d/run-fails" ]; then echo "[ E26 ] Insufficient memory requested." >&2; exit 1; fi
    echo RUNNING > "$d/state" ;;
  describe-enclaves)
    if [ -f "$d/state" ]; then
      printf '[\n  {\n    "EnclaveName": "strongroom",\n    "EnclaveID": "i-0abc-enc1",\n    "ProcessID": 4242,\n    "EnclaveCID": 16,\n    "NumberOfCPUs": 2,\n    "CPUIDs": [\n      1,\n      3\n    ],\n    "MemoryMiB": 1024,\n    "State": "%s",\n    "Flags": "NONE"\n  }\n]\n' "$(cat "$d/state")"
    else
      echo "[]"
    fi ;;
esac
"#;

/// `strongroom-enclave-run`, as the enclave unit runs it, against [`STAND_IN_NITRO_CLI`]:
/// it starts the enclave with the unit's arguments, stays while the enclave is RUNNING, and
/// exits 1 (so `Restart=on-failure` starts it again) when the enclave is terminating or
/// gone; it refuses debug mode and fails when `run-enclave` does.
#[test]
fn the_enclave_unit_restarts_a_dead_enclave() {
    use std::process::Stdio;
    use std::time::Duration;

    let unit = read("deploy/systemd/strongroom-enclave.service");
    assert!(unit.contains("\nRestart=on-failure\n"), "{unit}");
    let exec = unit_exec_lines(&unit);
    let start = commands(&exec)
        .into_iter()
        .find(|c| c[0] == "/usr/local/bin/strongroom-enclave-run")
        .expect("the unit's ExecStart runs /usr/local/bin/strongroom-enclave-run");
    let args = &start[1..];

    let data = temp_data("enclave-run");
    let fake = data.join("nitro-cli");
    std::fs::write(&fake, STAND_IN_NITRO_CLI).unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", data.display(), std::env::var("PATH").unwrap());
    let spawn = |args: &[String]| {
        Command::new("sh")
            .arg(repo().join("deploy/bin/strongroom-enclave-run"))
            .args(args)
            .env("PATH", &path)
            .env("STRONGROOM_ENCLAVE_WATCH_SECS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let calls = || std::fs::read_to_string(data.join("calls")).unwrap_or_default();

    for (end, reported) in [(Some("TERMINATING"), "is TERMINATING"), (None, "is absent")] {
        std::fs::write(data.join("calls"), "").unwrap();
        let mut child = spawn(args);
        std::thread::sleep(Duration::from_millis(2500));
        assert!(child.try_wait().unwrap().is_none(), "stays while RUNNING");
        let log = calls();
        assert!(
            log.starts_with(&format!(
                "run-enclave --enclave-name strongroom {}\n",
                args.join(" ")
            )),
            "{log}"
        );
        assert!(log.contains("describe-enclaves\n"), "{log}");
        match end {
            Some(state) => std::fs::write(data.join("state"), state).unwrap(),
            None => std::fs::remove_file(data.join("state")).unwrap(),
        }
        let (code, err) = wait_exit(&mut child, Duration::from_secs(10));
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains(reported), "{err}");
    }

    std::fs::write(data.join("calls"), "").unwrap();
    let mut debug = args.to_vec();
    debug.push("--debug-mode".into());
    let (code, err) = wait_exit(&mut spawn(&debug), Duration::from_secs(10));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--debug-mode is not allowed"), "{err}");
    assert_eq!(calls(), "", "nothing started");

    std::fs::write(data.join("run-fails"), "").unwrap();
    let (code, err) = wait_exit(&mut spawn(args), Duration::from_secs(10));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("Insufficient memory"), "{err}");
    assert!(!calls().contains("describe-enclaves"), "{}", calls());
    std::fs::remove_dir_all(&data).unwrap();
}
