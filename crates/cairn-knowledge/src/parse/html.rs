//! HTML to text: tags dropped, the content of `script`, `style`, `noscript`, `template`, `svg`
//! and `head` dropped (the `title` kept as the title), block elements turned into line breaks,
//! headings into Markdown `#` lines (so the chunker follows the page's sections), list items
//! into `- ` lines, entities decoded, whitespace collapsed except inside `pre`. Lenient by
//! design: any input gives some text, as browsers do.

/// Elements whose content is never text.
const SKIPPED: &[&str] = &["script", "style", "noscript", "template", "svg", "head", "iframe", "object"];
/// Elements that start and end a block.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "nav",
    "aside",
    "blockquote",
    "pre",
    "ul",
    "ol",
    "table",
    "tr",
    "form",
    "fieldset",
    "figure",
    "figcaption",
    "dl",
    "dt",
    "dd",
    "hr",
    "address",
    "details",
    "summary",
];

/// The text and title of an HTML document.
pub(super) fn to_text(html: &str) -> (String, Option<String>) {
    let mut out = String::with_capacity(html.len() / 2);
    let mut title = None;
    let mut skip: Option<String> = None;
    let mut in_title = false;
    let mut pre = 0usize;
    let mut rest = html;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            text(&mut out, rest, pre > 0, skip.is_some(), in_title, &mut title);
            break;
        };
        text(&mut out, &rest[..lt], pre > 0, skip.is_some(), in_title, &mut title);
        rest = &rest[lt..];
        // As in browsers, '<' opens a tag only before a letter, '/' or '!'; else it is text.
        if !rest[1..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '!') {
            text(&mut out, "<", pre > 0, skip.is_some(), in_title, &mut title);
            rest = &rest[1..];
            continue;
        }
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |i| &after[i + 3..]);
            continue;
        }
        let Some(gt) = rest.find('>') else {
            // A '<' that opens no tag is text.
            text(&mut out, rest, pre > 0, skip.is_some(), in_title, &mut title);
            break;
        };
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if name.is_empty() {
            continue; // <!DOCTYPE ...>, <?xml ...?>
        }
        if let Some(s) = &skip {
            if closing && *s == name {
                skip = None;
            }
            if name == "title" {
                in_title = !closing;
            }
            continue;
        }
        if name == "title" {
            in_title = !closing;
            continue;
        }
        if SKIPPED.contains(&name.as_str()) && !closing && !tag.ends_with('/') {
            skip = Some(name);
            continue;
        }
        match name.as_str() {
            "br" => out.push('\n'),
            "li" if !closing => out.push_str("\n- "),
            "pre" => {
                pre = if closing { pre.saturating_sub(1) } else { pre + 1 };
                out.push_str("\n\n");
            }
            h if h.len() == 2 && h.starts_with('h') && (b'1'..=b'6').contains(&h.as_bytes()[1]) => {
                out.push_str("\n\n");
                if !closing {
                    let level = usize::from(h.as_bytes()[1] - b'0');
                    out.push_str(&"#".repeat(level));
                    out.push(' ');
                }
            }
            "td" | "th" if !closing => out.push(' '),
            b if BLOCKS.contains(&b) => out.push_str("\n\n"),
            _ => {}
        }
    }
    // Tidy: no spaces at line ends or starts (outside the structure markers), few blank lines.
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    (super::normalise(&lines.join("\n")), title.filter(|t: &String| !t.is_empty()))
}

/// Appends a run of text, decoded and (outside `pre`) with whitespace collapsed.
fn text(out: &mut String, raw: &str, pre: bool, skipping: bool, in_title: bool, title: &mut Option<String>) {
    if raw.is_empty() {
        return;
    }
    let decoded = decode_entities(raw);
    if in_title {
        let t = collapse(&decoded);
        title.get_or_insert_with(String::new).push_str(t.trim());
        return;
    }
    if skipping {
        return;
    }
    if pre {
        out.push_str(&decoded);
    } else {
        let c = collapse(&decoded);
        if c == " " && (out.ends_with(' ') || out.ends_with('\n') || out.is_empty()) {
            return;
        }
        out.push_str(&c);
    }
}

/// Runs of whitespace become one space.
fn collapse(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            if !space {
                out.push(' ');
            }
            space = true;
        } else {
            out.push(c);
            space = false;
        }
    }
    out
}

/// Decodes the common named entities and every numeric one; unknown ones stay as written.
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let end = rest.find(';').filter(|&i| i <= 10);
        let decoded = end.and_then(|i| {
            let name = &rest[1..i];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" | "#39" => Some('\''),
                "nbsp" => Some(' '),
                "mdash" => Some('—'),
                "ndash" => Some('–'),
                "hellip" => Some('…'),
                "copy" => Some('©'),
                _ => {
                    let code = name
                        .strip_prefix("#x")
                        .or_else(|| name.strip_prefix("#X"))
                        .map(|h| u32::from_str_radix(h, 16))
                        .or_else(|| name.strip_prefix('#').map(str::parse::<u32>));
                    code.and_then(Result::ok).and_then(char::from_u32)
                }
            };
            c.map(|c| (c, i))
        });
        match decoded {
            Some((c, i)) => {
                out.push(c);
                rest = &rest[i + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}
