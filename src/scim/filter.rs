//! The SCIM filter grammar (RFC 7644 §3.4.2.2) and attribute paths (§3.5.2).
//!
//! A small recursive-descent parser of our own: the one crate for it
//! (`scim-filter`) filters in-memory collections through serde, leaves its
//! syntax tree undocumented and pulls in nom 7 and a decimal library; we
//! need the tree itself, to run list filters as SQL and PATCH value paths
//! on one resource. Attribute names are case-insensitive and may carry
//! their schema URN; `emails[type eq "work"]` reads as a filter on
//! `emails.type`.

use serde_json::Value;

/// An attribute path: `userName`, `name.givenName`, `emails.value`, lower-cased,
/// without a schema URN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath(pub String);

impl AttrPath {
    /// Reads a path as a client wrote it: the core schemas' URN prefix is
    /// dropped (the enterprise extension keeps its own, as a plain name).
    pub fn parse(raw: &str) -> AttrPath {
        let lower = raw.trim().to_ascii_lowercase();
        for core in [
            "urn:ietf:params:scim:schemas:core:2.0:user:",
            "urn:ietf:params:scim:schemas:core:2.0:group:",
        ] {
            if let Some(rest) = lower.strip_prefix(core) {
                return AttrPath(rest.to_owned());
            }
        }
        AttrPath(lower)
    }

    /// The path with `parent.` before it (a value path's inner filter).
    fn under(&self, parent: &AttrPath) -> AttrPath {
        AttrPath(format!("{}.{}", parent.0, self.0))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Present(AttrPath),
    Compare(AttrPath, CompareOp, Value),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
}

/// Why a filter does not parse (answered as `400 invalidFilter`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    Word(String),
    Literal(Value),
}

/// Filters longer than this are refused before parsing (a bounded cost).
pub const MAX_FILTER_CHARS: usize = 4096;

fn tokens(input: &str) -> Result<Vec<Token>, Invalid> {
    if input.len() > MAX_FILTER_CHARS {
        return Err(Invalid(format!(
            "a filter has at most {MAX_FILTER_CHARS} characters"
        )));
    }
    let mut out = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | '[' | ']' => {
                chars.next();
                out.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    '[' => Token::OpenBracket,
                    _ => Token::CloseBracket,
                });
            }
            '"' => {
                let end = string_end(&input[at..])
                    .ok_or_else(|| Invalid("unterminated string".into()))?;
                let text = &input[at..at + end];
                let value: String = serde_json::from_str(text)
                    .map_err(|_| Invalid(format!("invalid string {text}")))?;
                out.push(Token::Literal(Value::String(value)));
                while chars.peek().is_some_and(|&(i, _)| i < at + end) {
                    chars.next();
                }
            }
            _ => {
                let mut word = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if c.is_whitespace() || "()[]\"".contains(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                out.push(word_token(word));
            }
        }
    }
    Ok(out)
}

/// The byte length of the JSON string literal at the start of `s`.
fn string_end(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '"') => return Some(i + 1),
            _ => {}
        }
    }
    None
}

fn word_token(word: String) -> Token {
    match word.to_ascii_lowercase().as_str() {
        "true" => Token::Literal(Value::Bool(true)),
        "false" => Token::Literal(Value::Bool(false)),
        "null" => Token::Literal(Value::Null),
        _ => match serde_json::from_str::<serde_json::Number>(&word) {
            Ok(n) => Token::Literal(Value::Number(n)),
            Err(_) => Token::Word(word),
        },
    }
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

/// Nesting deeper than this is refused (no stack exhaustion on hostile input).
const MAX_DEPTH: usize = 32;

pub fn parse(input: &str) -> Result<Filter, Invalid> {
    let mut parser = Parser {
        tokens: tokens(input)?,
        at: 0,
        depth: 0,
    };
    let filter = parser.or()?;
    match parser.tokens.get(parser.at) {
        None => Ok(filter),
        Some(token) => Err(Invalid(format!("unexpected {token:?} after the filter"))),
    }
}

impl Parser {
    fn peek_word(&self, keyword: &str) -> bool {
        matches!(self.tokens.get(self.at), Some(Token::Word(w)) if w.eq_ignore_ascii_case(keyword))
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn expect(&mut self, wanted: Token) -> Result<(), Invalid> {
        match self.next() {
            Some(token) if token == wanted => Ok(()),
            other => Err(Invalid(format!("expected {wanted:?}, found {other:?}"))),
        }
    }

    fn or(&mut self) -> Result<Filter, Invalid> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Invalid("the filter nests too deeply".into()));
        }
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.at += 1;
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, Invalid> {
        let mut left = self.unary()?;
        while self.peek_word("and") {
            self.at += 1;
            left = Filter::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, Invalid> {
        if self.peek_word("not") {
            self.at += 1;
            self.expect(Token::Open)?;
            let inner = self.or()?;
            self.expect(Token::Close)?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.tokens.get(self.at) == Some(&Token::Open) {
            self.at += 1;
            let inner = self.or()?;
            self.expect(Token::Close)?;
            return Ok(inner);
        }
        self.attribute_expression()
    }

    fn attribute_expression(&mut self) -> Result<Filter, Invalid> {
        let path = match self.next() {
            Some(Token::Word(word)) => AttrPath::parse(&word),
            other => return Err(Invalid(format!("expected an attribute, found {other:?}"))),
        };
        if self.tokens.get(self.at) == Some(&Token::OpenBracket) {
            self.at += 1;
            let inner = self.or()?;
            self.expect(Token::CloseBracket)?;
            return Ok(prefixed(inner, &path));
        }
        let op = match self.next() {
            Some(Token::Word(op)) => op.to_ascii_lowercase(),
            other => return Err(Invalid(format!("expected an operator, found {other:?}"))),
        };
        if op == "pr" {
            return Ok(Filter::Present(path));
        }
        let op = compare_op(&op)?;
        match self.next() {
            Some(Token::Literal(value)) => Ok(Filter::Compare(path, op, value)),
            other => Err(Invalid(format!("expected a value, found {other:?}"))),
        }
    }
}

fn compare_op(op: &str) -> Result<CompareOp, Invalid> {
    Ok(match op {
        "eq" => CompareOp::Eq,
        "ne" => CompareOp::Ne,
        "co" => CompareOp::Co,
        "sw" => CompareOp::Sw,
        "ew" => CompareOp::Ew,
        "gt" => CompareOp::Gt,
        "ge" => CompareOp::Ge,
        "lt" => CompareOp::Lt,
        "le" => CompareOp::Le,
        other => return Err(Invalid(format!("unknown operator '{other}'"))),
    })
}

/// A value path's filter, its attributes read under the multi-valued one.
fn prefixed(filter: Filter, parent: &AttrPath) -> Filter {
    let under = |f: Filter| Box::new(prefixed(f, parent));
    match filter {
        Filter::Present(path) => Filter::Present(path.under(parent)),
        Filter::Compare(path, op, value) => Filter::Compare(path.under(parent), op, value),
        Filter::And(a, b) => Filter::And(under(*a), under(*b)),
        Filter::Or(a, b) => Filter::Or(under(*a), under(*b)),
        Filter::Not(a) => Filter::Not(under(*a)),
    }
}

/// A PATCH path (§3.5.2): an attribute, optionally a filter selecting
/// elements of it, optionally a sub-attribute of those elements.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// The attribute (`emails`, `name.givenName` as `name.givenname`).
    pub attribute: AttrPath,
    /// `members[value eq "7"]`: the filter, over the elements' own attributes.
    pub selector: Option<Filter>,
    /// `emails[type eq "work"].value`: `value`.
    pub sub_attribute: Option<String>,
}

pub fn parse_patch_path(raw: &str) -> Result<PatchPath, Invalid> {
    let Some(open) = raw.find('[') else {
        return Ok(PatchPath {
            attribute: AttrPath::parse(raw),
            selector: None,
            sub_attribute: None,
        });
    };
    let close = raw
        .rfind(']')
        .ok_or_else(|| Invalid(format!("unclosed '[' in path {raw}")))?;
    let selector = parse(&raw[open + 1..close])?;
    let rest = raw[close + 1..].trim();
    let sub_attribute = match rest.strip_prefix('.') {
        Some(sub) if !sub.is_empty() => Some(sub.to_ascii_lowercase()),
        None if rest.is_empty() => None,
        _ => return Err(Invalid(format!("unexpected '{rest}' in path {raw}"))),
    };
    Ok(PatchPath {
        attribute: AttrPath::parse(&raw[..open]),
        selector: Some(selector),
        sub_attribute,
    })
}

/// Whether an element of a multi-valued attribute (a JSON object) matches
/// `filter`, whose paths name the element's own attributes. Strings compare
/// case-insensitively.
pub fn matches(filter: &Filter, element: &Value) -> bool {
    match filter {
        Filter::And(a, b) => matches(a, element) && matches(b, element),
        Filter::Or(a, b) => matches(a, element) || matches(b, element),
        Filter::Not(a) => !matches(a, element),
        Filter::Present(path) => {
            field(element, path).is_some_and(|v| !v.is_null() && v != &Value::String(String::new()))
        }
        Filter::Compare(path, op, wanted) => {
            field(element, path).is_some_and(|found| compare(found, *op, wanted))
        }
    }
}

fn field<'v>(element: &'v Value, path: &AttrPath) -> Option<&'v Value> {
    let object = element.as_object()?;
    object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(&path.0))
        .map(|(_, v)| v)
}

fn compare(found: &Value, op: CompareOp, wanted: &Value) -> bool {
    let text = |v: &Value| match v {
        Value::String(s) => s.to_lowercase(),
        other => other.to_string(),
    };
    let (found, wanted) = (text(found), text(wanted));
    match op {
        CompareOp::Eq => found == wanted,
        CompareOp::Ne => found != wanted,
        CompareOp::Co => found.contains(&wanted),
        CompareOp::Sw => found.starts_with(&wanted),
        CompareOp::Ew => found.ends_with(&wanted),
        CompareOp::Gt => found > wanted,
        CompareOp::Ge => found >= wanted,
        CompareOp::Lt => found < wanted,
        CompareOp::Le => found <= wanted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(p: &str) -> AttrPath {
        AttrPath(p.into())
    }

    #[test]
    fn comparisons_and_logic() {
        let f = parse(r#"userName eq "bjensen" and (emails.value co "example" or active eq true)"#)
            .unwrap();
        let expected = Filter::And(
            Box::new(Filter::Compare(
                path("username"),
                CompareOp::Eq,
                json!("bjensen"),
            )),
            Box::new(Filter::Or(
                Box::new(Filter::Compare(
                    path("emails.value"),
                    CompareOp::Co,
                    json!("example"),
                )),
                Box::new(Filter::Compare(path("active"), CompareOp::Eq, json!(true))),
            )),
        );
        assert_eq!(f, expected);
        assert_eq!(parse("title pr").unwrap(), Filter::Present(path("title")));
        assert_eq!(
            parse(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName SW "J""#).unwrap(),
            Filter::Compare(path("username"), CompareOp::Sw, json!("J"))
        );
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let f = parse(r#"a eq "1" or b eq "2" and c eq "3""#).unwrap();
        assert!(matches!(f, Filter::Or(_, ref right) if matches!(**right, Filter::And(..))));
    }

    #[test]
    fn value_paths_read_under_their_attribute() {
        let f = parse(r#"emails[type eq "work" and value co "@example.com"]"#).unwrap();
        assert_eq!(
            f,
            Filter::And(
                Box::new(Filter::Compare(
                    path("emails.type"),
                    CompareOp::Eq,
                    json!("work")
                )),
                Box::new(Filter::Compare(
                    path("emails.value"),
                    CompareOp::Co,
                    json!("@example.com")
                )),
            )
        );
    }

    #[test]
    fn strings_keep_escapes_and_brackets() {
        let f = parse(r#"displayName eq "a \"quoted\" (name) [x]""#).unwrap();
        assert_eq!(
            f,
            Filter::Compare(
                path("displayname"),
                CompareOp::Eq,
                json!("a \"quoted\" (name) [x]")
            )
        );
    }

    #[test]
    fn malformed_filters_are_refused() {
        for bad in [
            "",
            "userName",
            "userName eq",
            r#"userName zz "x""#,
            r#"userName eq "x"#,
            r#"(userName eq "x""#,
            r#"userName eq "x" extra"#,
            "not userName pr",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let deep = format!("{}a pr{}", "(".repeat(100), ")".repeat(100));
        assert!(parse(&deep).is_err());
        assert!(parse(&"a pr or ".repeat(1000)).is_err());
    }

    #[test]
    fn patch_paths() {
        let p = parse_patch_path(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(p.attribute, path("emails"));
        assert_eq!(p.sub_attribute.as_deref(), Some("value"));
        let selector = p.selector.unwrap();
        assert!(matches(&selector, &json!({"type": "Work", "value": "x"})));
        assert!(!matches(&selector, &json!({"type": "home"})));
        let p = parse_patch_path(r#"members[value eq "7"]"#).unwrap();
        assert!(matches(&p.selector.unwrap(), &json!({"value": "7"})));
        assert_eq!(
            parse_patch_path("name.givenName").unwrap().attribute,
            path("name.givenname")
        );
    }
}
