//! Text helpers shared by every message people read (alerts, unlock results) and their renderers: one-line and
//! length-capped fields, Markdown-safe chat text, shell-safe words, SNS-safe subjects, and plain
//! e-mail text wrapped at [`WIDTH`] columns.

/// SNS `Subject` must be under 100 characters, printable ASCII, no line breaks.
pub const SUBJECT_MAX: usize = 99;

/// E-mail text width.
pub(crate) const WIDTH: usize = 72;
/// Free-form lock-derived fields (who, operation, info, …) are capped at this many characters.
pub(crate) const FIELD_MAX: usize = 300;

/// Paths and locations are bounded by the stores (S3 keys ≤ 1 KiB) and their end is what names
/// the state, so they are never cut; only line breaks go.
pub(crate) fn one_line(s: &str) -> String {
    s.replace(['\r', '\n', '\t'], " ")
}

/// Caps a free-form lock-derived field (who, operation, info, …) so one odd value cannot swamp a message.
pub(crate) fn clip(s: &str) -> String {
    let s = s.replace(['\r', '\n', '\t'], " ");
    if s.chars().count() <= FIELD_MAX {
        s
    } else {
        let mut out: String = s.chars().take(FIELD_MAX - 1).collect();
        out.push('…');
        out
    }
}

/// A backtick would end a code span early.
pub(crate) fn md_safe(s: &str) -> String {
    s.replace('`', "'")
}

pub(crate) fn md_code(s: &str) -> String {
    format!("`{}`", md_safe(s))
}

/// The email form of a chat sentence: no backticks (commands stand on lines of their own there).
pub(crate) fn plain(s: &str) -> String {
    s.replace('`', "")
}

/// Quotes a word for a POSIX shell only when it needs it.
pub(crate) fn shell_word(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/=+@,%".contains(c));
    if safe {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Replaces anything SNS would reject in a subject (non-ASCII, control characters) with `?`/space.
pub(crate) fn printable_ascii(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            ' '..='~' => c,
            c if c.is_whitespace() => ' ',
            _ => '?',
        })
        .collect()
}

/// The email's first lines: the title, wrapped, underlined, then a blank line.
pub(crate) fn heading(title: &str) -> String {
    let text = wrap(title, "", "");
    let width = text.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    format!("{text}{}\n\n", "=".repeat(width))
}

/// Greedy word wrap at [`WIDTH`]; long words (ARNs, tokens) stay whole on their own line.
pub(crate) fn wrap(text: &str, first_indent: &str, indent: &str) -> String {
    let mut out = String::new();
    let mut line = first_indent.to_owned();
    let mut line_has_word = false;
    for word in text.split_whitespace() {
        let len = line.chars().count() + usize::from(line_has_word) + word.chars().count();
        if line_has_word && len > WIDTH {
            out.push_str(line.trim_end());
            out.push('\n');
            line = indent.to_owned();
            line_has_word = false;
        }
        if line_has_word {
            line.push(' ');
        }
        line.push_str(word);
        line_has_word = true;
    }
    out.push_str(line.trim_end());
    out.push('\n');
    out
}

/// `prefix` + `path` as an SNS subject: printable ASCII, at most [`SUBJECT_MAX`] characters. When
/// too long the path loses its start (`...` + the end, which names the state).
fn subject_line(prefix: &str, path: &str) -> String {
    let path = printable_ascii(path.trim());
    let budget = SUBJECT_MAX.saturating_sub(prefix.len());
    let path = if path.len() <= budget {
        path
    } else if budget > 3 {
        format!("...{}", &path[path.len() - (budget - 3)..])
    } else {
        String::new()
    };
    let mut subject = format!("{prefix}{path}");
    subject.truncate(SUBJECT_MAX);
    subject.trim().to_owned()
}

/// `2025-03-04 09:15:27 UTC`: how times appear in reasons, alerts, results and the CLI.
pub fn fmt_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// Text from the outside (approver, reason, lock fields, quoted input) outside code spans: no
/// backticks, and no angle brackets, which chat clients turn into mentions and links.
pub(crate) fn md_text(s: &str) -> String {
    s.replace('`', "'").replace('<', "‹").replace('>', "›")
}

/// `[sender] lead path`, printable ASCII, at most [`SUBJECT_MAX`] characters: `sender` is the
/// deployment for alerts, `lockreaper` for force-unlock's results. When too long the path loses
/// its start (`...` + the end, which names the state), then a sender over 30 characters is cut.
pub(crate) fn subject(sender: &str, lead: &str, path: &str) -> String {
    let mut sender = printable_ascii(sender.trim());
    if sender.chars().count() > 30 {
        sender = sender.chars().take(27).collect::<String>() + "...";
    }
    let prefix = if sender.is_empty() {
        printable_ascii(lead)
    } else {
        format!("[{sender}] {}", printable_ascii(lead))
    };
    subject_line(&prefix, path)
}
