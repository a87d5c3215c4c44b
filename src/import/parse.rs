//! keepalived.conf grammar: statements, `{ }` blocks, comments, quoted strings, `include`
//! with globs and `$NAME` macros, turned into a tree of [`Node`]s that keep their file and
//! line.
//!
//! The grammar follows keepalived's own reader (keepalived/core/parser.c, keepalived 2.x):
//! a statement is the words of one line; `#` and `!` start a comment outside quotes; `{`
//! opens the block of the statement before it (on the same line or the line before), `}`
//! closes it; `include PATTERN` reads the files the glob matches (relative to the including
//! file's directory), in name order; `$NAME=value` on a line of its own defines a macro (a
//! trailing `\` continues the definition on the next line: a multi-line macro, whose lines
//! stay lines where it is used) and `$NAME` / `${NAME}` in a later word is replaced by its
//! value, expanded at the point of use.
//!
//! What the reader cannot take literally becomes a [`Problem`] with its place instead of a
//! guess: an undefined macro, a template placeholder (`{{ x }}`), an unbalanced brace, an
//! unreadable or too large file, an include loop or too deep a nesting. A statement that
//! contains an undefined macro or a placeholder is marked [`Node::tainted`] and the mapper
//! skips it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The deepest `include` nesting read (the top file is depth 0). keepalived itself has no
/// limit; 8 covers `keepalived.conf` → `conf.d/*` → per-service files with room to spare.
pub const MAX_INCLUDE_DEPTH: usize = 8;
/// The largest file read, in bytes. The largest keepalived.conf in the wild are a few
/// hundred kB (hundreds of `virtual_server` blocks); anything bigger is not a config.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// The most files read through includes, in all.
pub const MAX_FILES: usize = 512;

/// A place in the input: file (as given or found through an include) and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The file, as the operator named it or as the include glob found it.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// One word of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The text, macros expanded, quotes removed.
    pub text: String,
    /// Whether it was written in double quotes (`script "/bin/x arg"`).
    pub quoted: bool,
}

/// One statement: a keyword, its arguments and, for a block, its children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Where its first word is.
    pub place: Place,
    /// The first word.
    pub keyword: String,
    /// The other words.
    pub args: Vec<Word>,
    /// `Some` for a block (`keyword args { ... }`).
    pub children: Option<Vec<Node>>,
    /// An undefined macro or a template placeholder was in it: its words are not what the
    /// operator meant, so the mapper does not use it.
    pub tainted: bool,
}

impl Node {
    /// The arguments' texts.
    pub fn arg_texts(&self) -> Vec<&str> {
        self.args.iter().map(|w| w.text.as_str()).collect()
    }

    /// The block's children, or none.
    pub fn kids(&self) -> &[Node] {
        self.children.as_deref().unwrap_or(&[])
    }
}

/// Something the reader could not take literally; each becomes a report line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where.
    pub place: Place,
    /// The keyword (or `include`, `$NAME`, `{{ }}`) it concerns.
    pub keyword: String,
    /// What is wrong, in words.
    pub message: String,
    /// What to do instead, when not "fix the keepalived config".
    pub instead: Option<String>,
}

/// The parsed configuration: the top-level statements of the file and its includes, and
/// the problems met.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Top-level statements in reading order (includes spliced in where they stand).
    pub nodes: Vec<Node>,
    /// Everything that could not be read literally.
    pub problems: Vec<Problem>,
}

/// Reads `path` and everything it includes.
///
/// Errors: `Err` only when the top file itself cannot be read (missing, unreadable, too
/// large); problems in included files are [`Parsed::problems`].
pub fn parse_file(path: &Path) -> Result<Parsed, String> {
    let mut reader = Reader {
        macros: HashMap::new(),
        problems: Vec::new(),
        stack: Vec::new(),
        files: 0,
    };
    let text = read_limited(path)?;
    let nodes = reader.parse_text(&text, path, path, 0);
    Ok(Parsed {
        nodes,
        problems: reader.problems,
    })
}

/// Parses text as if it were the file `name` (includes are resolved relative to `name`'s
/// directory).
pub fn parse_str(text: &str, name: &Path) -> Parsed {
    let mut reader = Reader {
        macros: HashMap::new(),
        problems: Vec::new(),
        stack: Vec::new(),
        files: 0,
    };
    let nodes = reader.parse_text(text, name, name, 0);
    Parsed {
        nodes,
        problems: reader.problems,
    }
}

fn read_limited(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{}: not a regular file", path.display()));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{}: {} bytes, more than the {MAX_FILE_BYTES} bytes read",
            path.display(),
            meta.len()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8 text", path.display()))
}

struct Reader {
    macros: HashMap<String, String>,
    problems: Vec<Problem>,
    /// Canonical paths of the files being read (include loop detection).
    stack: Vec<PathBuf>,
    files: usize,
}

/// A token of one line.
#[derive(Debug, Clone)]
enum Tok {
    Word(Word, bool),
    Open,
    Close,
}

/// A block being filled.
struct Frame {
    node: Option<Node>,
    children: Vec<Node>,
}

impl Reader {
    fn problem(&mut self, place: &Place, keyword: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            place: place.clone(),
            keyword: keyword.to_string(),
            message: message.into(),
            instead: None,
        });
    }

    /// Parses one file's text: `real` is where it is (includes resolve against its
    /// directory), `shown` the name used in places.
    fn parse_text(&mut self, text: &str, real: &Path, shown: &Path, depth: usize) -> Vec<Node> {
        self.files += 1;
        let canonical = std::fs::canonicalize(real).unwrap_or_else(|_| real.to_path_buf());
        self.stack.push(canonical);
        let file = shown.display().to_string();
        let mut frames = vec![Frame {
            node: None,
            children: Vec::new(),
        }];
        // The statement of the previous line, when it may still take a `{` on the next.
        let mut pending: Option<Node> = None;
        // (line number, text): the file's lines, and the lines a multi-line macro expands to
        // (they keep the line number of their use).
        let mut queue: std::collections::VecDeque<(usize, String)> = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.to_string()))
            .collect();
        let mut spliced = 0usize;
        while let Some((line_no, raw_line)) = queue.pop_front() {
            let place = Place {
                file: file.clone(),
                line: line_no,
            };
            let trimmed = raw_line.trim_start();
            if let Some(def) = trimmed.strip_prefix('$') {
                if let Some((name, value)) = def.split_once('=') {
                    let name = name.trim();
                    if is_macro_name(name) {
                        // keepalived stores the text and substitutes it where it is used
                        // (so it may name a macro defined later); a line ending in `\`
                        // continues the definition on the next (keepalived.conf(5),
                        // "Multiline definitions"): each line stays a line when used.
                        let mut lines = Vec::new();
                        let mut part = strip_comment(value).trim().to_string();
                        while let Some(head) = part.strip_suffix('\\') {
                            let head = head.trim();
                            if !head.is_empty() {
                                lines.push(head.to_string());
                            }
                            match queue.pop_front() {
                                Some((_, next)) => part = strip_comment(&next).trim().to_string(),
                                None => {
                                    part = String::new();
                                    break;
                                }
                            }
                        }
                        if !part.is_empty() {
                            lines.push(part);
                        }
                        self.macros.insert(name.to_string(), lines.join("\n"));
                        continue;
                    }
                }
            }
            if let Some(lines) = self.splice_multiline(&raw_line) {
                spliced += 1;
                if spliced > MAX_SPLICES {
                    self.problem(
                        &place,
                        "$",
                        format!(
                            "more than {MAX_SPLICES} multi-line macro uses (a macro that uses \
                             itself?): the line is skipped"
                        ),
                    );
                    continue;
                }
                for l in lines.into_iter().rev() {
                    queue.push_front((line_no, l));
                }
                continue;
            }
            if trimmed.starts_with('@') || trimmed.starts_with('~') {
                self.problem(
                    &place,
                    trimmed.split_whitespace().next().unwrap_or("@"),
                    "conditional configuration lines (`@ID`, `~SEQ`) are not supported: \
                     the line is skipped",
                );
                if let Some(p) = self.problems.last_mut() {
                    p.instead = Some("write the line for this node".into());
                }
                continue;
            }
            let toks = self.tokenize(&raw_line, &place);
            if toks.is_empty() {
                continue;
            }
            let mut current: Option<Node> = None;
            for tok in toks {
                match tok {
                    Tok::Word(w, tainted) => match current.as_mut() {
                        Some(n) => {
                            n.args.push(w);
                            n.tainted |= tainted;
                        }
                        None => {
                            if let Some(p) = pending.take() {
                                self.finish(&mut frames, p, depth);
                            }
                            current = Some(Node {
                                place: place.clone(),
                                keyword: w.text,
                                args: Vec::new(),
                                children: None,
                                tainted,
                            });
                        }
                    },
                    Tok::Open => {
                        let header = current.take().or_else(|| pending.take());
                        match header {
                            Some(n) => frames.push(Frame {
                                node: Some(n),
                                children: Vec::new(),
                            }),
                            None => {
                                self.problem(&place, "{", "`{` without a keyword before it");
                                frames.push(Frame {
                                    node: Some(Node {
                                        place: place.clone(),
                                        keyword: "{".into(),
                                        args: Vec::new(),
                                        children: None,
                                        tainted: true,
                                    }),
                                    children: Vec::new(),
                                });
                            }
                        }
                    }
                    Tok::Close => {
                        if let Some(n) = current.take().or_else(|| pending.take()) {
                            self.finish(&mut frames, n, depth);
                        }
                        if frames.len() > 1 {
                            if let Some(mut frame) = frames.pop() {
                                if let Some(mut n) = frame.node.take() {
                                    n.children = Some(frame.children);
                                    if let Some(parent) = frames.last_mut() {
                                        parent.children.push(n);
                                    }
                                }
                            }
                        } else {
                            self.problem(&place, "}", "`}` without a block to close");
                        }
                    }
                }
            }
            if let Some(n) = current {
                if let Some(p) = pending.take() {
                    self.finish(&mut frames, p, depth);
                }
                pending = Some(n);
            }
        }
        if let Some(p) = pending.take() {
            self.finish(&mut frames, p, depth);
        }
        while frames.len() > 1 {
            if let Some(mut frame) = frames.pop() {
                if let Some(mut n) = frame.node.take() {
                    self.problem(
                        &n.place,
                        &n.keyword,
                        format!(
                            "block `{}` is not closed before the end of the file",
                            n.keyword
                        ),
                    );
                    n.tainted = true;
                    n.children = Some(frame.children);
                    if let Some(parent) = frames.last_mut() {
                        parent.children.push(n);
                    }
                }
            }
        }
        self.stack.pop();
        frames.pop().map(|f| f.children).unwrap_or_default()
    }

    /// Adds a finished statement to the innermost block; an `include` is read there.
    fn finish(&mut self, frames: &mut [Frame], node: Node, depth: usize) {
        let Some(frame) = frames.last_mut() else {
            return;
        };
        if node.keyword == "include" && node.children.is_none() {
            let included = self.include(&node, depth);
            frame.children.extend(included);
        } else {
            frame.children.push(node);
        }
    }

    fn include(&mut self, node: &Node, depth: usize) -> Vec<Node> {
        if node.tainted {
            return Vec::new();
        }
        let [pattern] = node.args.as_slice() else {
            self.problem(
                &node.place,
                "include",
                "`include` takes exactly one pattern",
            );
            return Vec::new();
        };
        if depth + 1 > MAX_INCLUDE_DEPTH {
            self.problem(
                &node.place,
                "include",
                format!(
                    "includes nested deeper than {MAX_INCLUDE_DEPTH}: `{}` not read",
                    pattern.text
                ),
            );
            return Vec::new();
        }
        let base = self
            .stack
            .last()
            .and_then(|p| p.parent())
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let from = Path::new(&node.place.file)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let files = match glob(&base, &pattern.text) {
            Ok(f) => f,
            Err(e) => {
                self.problem(&node.place, "include", e);
                return Vec::new();
            }
        };
        if files.is_empty() {
            self.problem(
                &node.place,
                "include",
                format!("`{}` matches no file", pattern.text),
            );
        }
        let mut out = Vec::new();
        for rel in files {
            let path = if Path::new(&pattern.text).is_absolute() {
                rel.clone()
            } else {
                from.join(&rel)
            };
            let real = base.join(&rel);
            let canonical = std::fs::canonicalize(&real).unwrap_or_else(|_| real.clone());
            if self.stack.contains(&canonical) {
                self.problem(
                    &node.place,
                    "include",
                    format!("include loop: {} is already being read", path.display()),
                );
                continue;
            }
            if self.files >= MAX_FILES {
                self.problem(
                    &node.place,
                    "include",
                    format!("more than {MAX_FILES} files: {} not read", path.display()),
                );
                continue;
            }
            match read_limited(&real) {
                Ok(text) => {
                    // Shown under the name the operator sees (relative to the top file);
                    // its own includes resolve against its real location.
                    let nodes = self.parse_text(&text, &real, &path, depth + 1);
                    out.extend(nodes);
                }
                Err(e) => self.problem(&node.place, "include", format!("cannot read {e}")),
            }
        }
        out
    }

    /// Splits a line into words and braces; expands macros; notes placeholders.
    fn tokenize(&mut self, line: &str, place: &Place) -> Vec<Tok> {
        let mut toks = Vec::new();
        let mut chars = line.char_indices().peekable();
        let mut word = String::new();
        let mut in_word = false;
        let mut quoted = false;
        let mut placeholder = false;
        let push = |toks: &mut Vec<Tok>,
                    reader: &mut Reader,
                    word: &mut String,
                    quoted: bool,
                    placeholder: bool| {
            let (text, undefined) = reader.expand(word);
            let tainted = placeholder || !undefined.is_empty();
            for name in undefined {
                reader.problem(
                    place,
                    &name,
                    format!("undefined macro {name}: the statement is skipped"),
                );
            }
            toks.push(Tok::Word(Word { text, quoted }, tainted));
            word.clear();
        };
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    // A quoted string: up to the next unescaped quote.
                    let mut s = String::new();
                    let mut closed = false;
                    while let Some((_, d)) = chars.next() {
                        match d {
                            '\\' => {
                                if let Some((_, e)) = chars.next() {
                                    s.push(e);
                                }
                            }
                            '"' => {
                                closed = true;
                                break;
                            }
                            _ => s.push(d),
                        }
                    }
                    if !closed {
                        self.problem(place, "\"", "quoted string not closed on its line");
                    }
                    word.push_str(&s);
                    in_word = true;
                    quoted = true;
                }
                '#' | '!' => break,
                '{' if line[i..].starts_with("{{") => {
                    let end = line[i..]
                        .find("}}")
                        .map(|e| i + e + 2)
                        .unwrap_or(line.len());
                    let ph = &line[i..end];
                    self.problem(
                        place,
                        ph,
                        format!("template placeholder `{ph}` was never filled in: the statement is skipped"),
                    );
                    word.push_str(ph);
                    in_word = true;
                    placeholder = true;
                    while chars.peek().is_some_and(|(j, _)| *j < end) {
                        chars.next();
                    }
                }
                '{' if word.ends_with('$') => {
                    // `${NAME}`: part of the word, up to its `}`.
                    word.push('{');
                    for (_, d) in chars.by_ref() {
                        word.push(d);
                        if d == '}' {
                            break;
                        }
                    }
                }
                '{' | '}' => {
                    if in_word {
                        push(&mut toks, self, &mut word, quoted, placeholder);
                        in_word = false;
                        quoted = false;
                        placeholder = false;
                    }
                    toks.push(if c == '{' { Tok::Open } else { Tok::Close });
                }
                c if c.is_whitespace() => {
                    if in_word {
                        push(&mut toks, self, &mut word, quoted, placeholder);
                        in_word = false;
                        quoted = false;
                        placeholder = false;
                    }
                }
                c => {
                    word.push(c);
                    in_word = true;
                }
            }
        }
        if in_word {
            push(&mut toks, self, &mut word, quoted, placeholder);
        }
        toks
    }

    /// The first use of a multi-line macro in `line`, spliced: the text before it joined to
    /// the macro's first line, its middle lines, its last line joined to the text after it
    /// (keepalived's parser.c does the same). `None` when the line uses no multi-line macro.
    fn splice_multiline(&self, line: &str) -> Option<Vec<String>> {
        let code = strip_comment(line);
        let mut from = 0;
        while let Some(pos) = code[from..].find('$').map(|p| p + from) {
            let after = &code[pos + 1..];
            let (name, len) = macro_ref(after);
            from = pos + 1;
            let Some(value) = self.macros.get(name).filter(|v| v.contains('\n')) else {
                continue;
            };
            let mut lines: Vec<String> = value.split('\n').map(str::to_string).collect();
            if let Some(first) = lines.first_mut() {
                *first = format!("{}{first}", &code[..pos]);
            }
            if let Some(last) = lines.last_mut() {
                last.push_str(&code[pos + 1 + len..]);
            }
            return Some(lines);
        }
        None
    }

    /// Replaces `$NAME` and `${NAME}` by defined macros, at the point of use (a macro's
    /// value is expanded again, up to [`MAX_MACRO_DEPTH`] levels); returns the undefined
    /// names (left in place, as keepalived does).
    fn expand(&self, text: &str) -> (String, Vec<String>) {
        self.expand_depth(text, 0)
    }

    fn expand_depth(&self, text: &str, depth: usize) -> (String, Vec<String>) {
        let mut out = String::new();
        let mut undefined = Vec::new();
        let mut rest = text;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            let (name, len) = if let Some(inner) = after.strip_prefix('{') {
                match inner.find('}') {
                    Some(end) => (&inner[..end], end + 2),
                    None => ("", 0),
                }
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            };
            if name.is_empty() || !is_macro_name(name) {
                out.push('$');
                rest = after;
                continue;
            }
            match self.macros.get(name) {
                Some(v) if depth < MAX_MACRO_DEPTH => {
                    let (v, inner) = self.expand_depth(&v.replace('\n', " "), depth + 1);
                    out.push_str(&v);
                    undefined.extend(inner);
                }
                Some(v) => out.push_str(v),
                None => {
                    undefined.push(format!("${name}"));
                    out.push('$');
                    out.push_str(&after[..len]);
                }
            }
            rest = &after[len..];
        }
        out.push_str(rest);
        (out, undefined)
    }
}

/// How many levels of macros within macros are expanded.
const MAX_MACRO_DEPTH: usize = 16;
/// How many multi-line macro uses one file may expand (a loop guard).
const MAX_SPLICES: usize = 10_000;

/// The macro name after a `$` (`NAME` or `{NAME}`) and the bytes it takes; `("", 0)` for none.
fn macro_ref(after: &str) -> (&str, usize) {
    if let Some(inner) = after.strip_prefix('{') {
        match inner.find('}') {
            Some(end) => (&inner[..end], end + 2),
            None => ("", 0),
        }
    } else {
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        (&after[..end], end)
    }
}

fn is_macro_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The text before a `#` or `!` comment (outside quotes).
fn strip_comment(text: &str) -> &str {
    let mut in_quote = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => in_quote = !in_quote,
            '#' | '!' if !in_quote => return &text[..i],
            _ => {}
        }
    }
    text
}

/// The files a glob pattern matches, relative to `base` when the pattern is relative
/// (absolute otherwise), sorted. `*`, `?` and `[...]` within one path component, as
/// glob(3) does for keepalived.
fn glob(base: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let absolute = Path::new(pattern).is_absolute();
    let mut found: Vec<PathBuf> = vec![PathBuf::new()];
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let mut next = Vec::new();
        for prefix in &found {
            let dir = if absolute {
                Path::new("/").join(prefix)
            } else {
                base.join(prefix)
            };
            if !part.contains(['*', '?', '[']) {
                let candidate = prefix.join(part);
                let real = dir.join(part);
                if (last && real.is_file()) || (!last && real.is_dir()) {
                    next.push(candidate);
                }
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.') || part.starts_with('.'))
                .filter(|n| matches(part, n))
                .collect();
            names.sort();
            for n in names {
                let real = dir.join(&n);
                if (last && real.is_file()) || (!last && real.is_dir()) {
                    next.push(prefix.join(n));
                }
            }
        }
        found = next;
    }
    if parts.is_empty() {
        return Err("`include` with an empty pattern".into());
    }
    Ok(found
        .into_iter()
        .map(|p| if absolute { Path::new("/").join(p) } else { p })
        .collect())
}

/// Whether `name` matches the glob component `pat` (`*`, `?`, `[abc]`, `[a-z]`, `[!x]`).
fn matches(pat: &str, name: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|k| go(&p[1..], &n[k..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => {
                let Some(close) = p.iter().skip(2).position(|c| *c == ']').map(|x| x + 2) else {
                    return n.first() == Some(&'[') && go(&p[1..], &n[1..]);
                };
                let Some(c) = n.first() else { return false };
                let mut set = &p[1..close];
                let negate = matches!(set.first(), Some('!') | Some('^'));
                if negate {
                    set = &set[1..];
                }
                let mut hit = false;
                let mut k = 0;
                while k < set.len() {
                    if k + 2 < set.len() && set[k + 1] == '-' {
                        hit |= set[k] <= *c && *c <= set[k + 2];
                        k += 3;
                    } else {
                        hit |= set[k] == *c;
                        k += 1;
                    }
                }
                hit != negate && go(&p[close + 1..], &n[1..])
            }
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    go(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Parsed {
        parse_str(text, Path::new("/nonexistent/keepalived.conf"))
    }

    #[test]
    fn blocks_comments_quotes_and_lines() {
        let p = parse(
            "! top\nglobal_defs {\n  router_id lb1 # trailing\n}\nvrrp_script chk\n{\n  script \"/bin/x a b\" ! c\n}\nvrrp_instance V { priority 10 }\n",
        );
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(p.nodes.len(), 3);
        assert_eq!(p.nodes[0].keyword, "global_defs");
        assert_eq!(p.nodes[0].kids()[0].arg_texts(), ["lb1"]);
        assert_eq!(p.nodes[0].kids()[0].place.line, 3);
        let script = &p.nodes[1].kids()[0];
        assert_eq!(script.args[0].text, "/bin/x a b");
        assert!(script.args[0].quoted);
        assert_eq!(script.place.line, 7);
        assert_eq!(p.nodes[2].kids()[0].keyword, "priority");
        assert_eq!(p.nodes[2].kids()[0].place.line, 9);
    }

    #[test]
    fn macros_expand_and_undefined_ones_taint() {
        let p = parse("$PRIO=150\n$IF=eth0\nvrrp_instance V {\n priority $PRIO\n interface ${IF}\n state $NOPE\n}\n");
        let kids = p.nodes[0].kids();
        assert_eq!(kids[0].arg_texts(), ["150"]);
        assert_eq!(kids[1].arg_texts(), ["eth0"]);
        assert!(kids[2].tainted);
        assert_eq!(p.problems.len(), 1);
        assert_eq!(p.problems[0].place.line, 6);
        assert!(p.problems[0].message.contains("$NOPE"));
    }

    /// keepalived.conf(5) "Multiline definitions": a `\\` at the end continues the
    /// definition; used on a line, each of its lines is a line (at the line of use), and
    /// macros are substituted where used, so one may name a macro defined after it.
    #[test]
    fn multiline_macros_splice_lines_and_expand_where_used() {
        let p = parse(
            "$PEERS=${A} \\\n  ${B}\n$INST= \\\n vrrp_instance V { \\\n  unicast_peer { \\\n    $PEERS \\\n  } \\\n  priority ${PRIO} \\\n }\n\
             $A=192.0.2.1\n$B=192.0.2.2\n$PRIO=120\n$INST\n$UNDEF_LATER\n",
        );
        assert_eq!(p.nodes.len(), 2, "{:#?}", p.nodes);
        assert!(p.nodes[1].tainted);
        let v = &p.nodes[0];
        assert_eq!(v.keyword, "vrrp_instance");
        assert_eq!(v.place.line, 13);
        let kids = v.kids();
        assert_eq!(kids[0].keyword, "unicast_peer");
        let peers: Vec<&str> = kids[0].kids().iter().map(|k| k.keyword.as_str()).collect();
        assert_eq!(peers, ["192.0.2.1", "192.0.2.2"]);
        assert_eq!(kids[1].arg_texts(), ["120"]);
        // An undefined macro is left in place and reported at its line.
        assert_eq!(p.problems.len(), 1, "{:?}", p.problems);
        assert_eq!(p.problems[0].place.line, 14);
        assert!(p.problems[0].message.contains("$UNDEF_LATER"));
    }

    #[test]
    fn placeholders_and_unbalanced_braces_are_problems() {
        let p = parse("vrrp_instance V {\n priority {{ prio }}\n}\n}\nvrrp_instance W {\n");
        assert!(p.nodes[0].kids()[0].tainted);
        let lines: Vec<usize> = p.problems.iter().map(|x| x.place.line).collect();
        assert_eq!(lines, [2, 4, 5], "{:?}", p.problems);
        assert!(p.nodes[1].tainted);
    }

    #[test]
    fn includes_globs_loops_and_depth() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("conf.d")).unwrap();
        std::fs::write(
            d.join("top.conf"),
            "include conf.d/*.conf\ninclude missing/*.conf\n",
        )
        .unwrap();
        std::fs::write(d.join("conf.d/b.conf"), "vrrp_instance B {\n}\n").unwrap();
        std::fs::write(
            d.join("conf.d/a.conf"),
            "vrrp_instance A {\n include ../loop.inc\n}\n",
        )
        .unwrap();
        std::fs::write(d.join("loop.inc"), "priority 5\ninclude conf.d/a.conf\n").unwrap();
        std::fs::write(d.join("conf.d/skip.txt"), "nonsense {").unwrap();
        let p = parse_file(&d.join("top.conf")).unwrap();
        let names: Vec<&str> = p.nodes.iter().map(|n| n.arg_texts()[0]).collect();
        assert_eq!(names, ["A", "B"]);
        assert_eq!(p.nodes[0].kids()[0].keyword, "priority");
        assert!(p.nodes[0].kids()[0].place.file.ends_with("loop.inc"));
        let msgs: Vec<&str> = p.problems.iter().map(|x| x.message.as_str()).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(msgs[0].contains("include loop"), "{msgs:?}");
        assert!(msgs[1].contains("matches no file"), "{msgs:?}");

        // A chain deeper than the limit stops with a problem, not a stack overflow.
        for i in 0..12 {
            std::fs::write(
                d.join(format!("d{i}.conf")),
                format!("include d{}.conf\n", i + 1),
            )
            .unwrap();
        }
        let p = parse_file(&d.join("d0.conf")).unwrap();
        assert_eq!(p.problems.len(), 1, "{:?}", p.problems);
        assert!(p.problems[0].message.contains("deeper than 8"));
    }

    #[test]
    fn glob_components() {
        assert!(matches("*.conf", "a.conf"));
        assert!(!matches("*.conf", "a.conf.bak"));
        assert!(matches("vrrp_[0-9]?.conf", "vrrp_1x.conf"));
        assert!(!matches("[!a]*", "abc"));
    }

    #[test]
    fn too_large_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.conf");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_FILE_BYTES + 1).unwrap();
        assert!(parse_file(&big).unwrap_err().contains("more than"));
    }
}
