//! `adaptFilters` expressions of adaptive video transcoding (api-digest §2, "mode adaptive with
//! adaptFilters"). The service documents the grammar only by example
//! (`"bitrate > 4000 or bframes > 0"`) and does not validate on save, so a typo silently never
//! matches; Sluice parses on save and rejects what it cannot parse.
//!
//! Grammar (keywords and variables are case-sensitive, whitespace is free):
//! ```text
//! expr    := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | "(" expr ")" | compare
//! compare := operand op operand
//! operand := variable | number
//! op      := ">" | ">=" | "<" | "<=" | "==" | "!="
//! variable:= codec | width | height | fps | bitrate | gop | bframes
//! number  := digits ["." digits]
//! ```

use std::fmt;

/// Longest accepted expression in bytes: bounds parse work per request.
pub const MAX_FILTER_LEN: usize = 1024;
/// Deepest accepted nesting of `not` and parentheses: bounds parser recursion.
pub const MAX_DEPTH: usize = 32;

/// A source-stream variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    /// Numeric codec type (2 = H.264, 3 = H.265, 12 = AV1).
    Codec,
    /// Pixels.
    Width,
    /// Pixels.
    Height,
    /// Frames per second.
    Fps,
    /// kbps.
    Bitrate,
    /// GOP in ms.
    Gop,
    /// B-frames present (0 or 1).
    Bframes,
}

impl Var {
    fn name(self) -> &'static str {
        match self {
            Var::Codec => "codec",
            Var::Width => "width",
            Var::Height => "height",
            Var::Fps => "fps",
            Var::Bitrate => "bitrate",
            Var::Gop => "gop",
            Var::Bframes => "bframes",
        }
    }
    fn from_name(s: &str) -> Option<Var> {
        Some(match s {
            "codec" => Var::Codec,
            "width" => Var::Width,
            "height" => Var::Height,
            "fps" => Var::Fps,
            "bitrate" => Var::Bitrate,
            "gop" => Var::Gop,
            "bframes" => Var::Bframes,
            _ => return None,
        })
    }
}

/// Comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    fn text(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// Operand of a comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Operand {
    /// A variable.
    Var(Var),
    /// A literal.
    Num(f64),
}

/// Parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `a op b`
    Cmp(Operand, Op, Operand),
    /// `not e`
    Not(Box<Expr>),
    /// `a and b`
    And(Box<Expr>, Box<Expr>),
    /// `a or b`
    Or(Box<Expr>, Box<Expr>),
}

/// Source values an expression is evaluated against.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Vars {
    /// Numeric codec type.
    pub codec: f64,
    /// Pixels.
    pub width: f64,
    /// Pixels.
    pub height: f64,
    /// fps.
    pub fps: f64,
    /// kbps.
    pub bitrate: f64,
    /// ms.
    pub gop: f64,
    /// 0 or 1.
    pub bframes: f64,
}

/// A parse failure, with the byte offset where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at offset {at}")]
pub struct FilterError {
    /// What was wrong.
    pub what: String,
    /// Byte offset into the expression.
    pub at: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Num(f64),
    Op(Op),
    LParen,
    RParen,
}

fn lex(s: &str) -> Result<Vec<(usize, Tok)>, FilterError> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let err = |what: &str, at| FilterError {
        what: what.into(),
        at,
    };
    while let Some(&c) = b.get(i) {
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                out.push((start, Tok::LParen));
                i += 1
            }
            b')' => {
                out.push((start, Tok::RParen));
                i += 1
            }
            b'>' | b'<' | b'=' | b'!' => {
                let eq = b.get(i + 1) == Some(&b'=');
                let op = match (c, eq) {
                    (b'>', true) => Op::Ge,
                    (b'>', false) => Op::Gt,
                    (b'<', true) => Op::Le,
                    (b'<', false) => Op::Lt,
                    (b'=', true) => Op::Eq,
                    (b'!', true) => Op::Ne,
                    _ => return Err(err("expected '==' or '!='", start)),
                };
                i += if eq { 2 } else { 1 };
                out.push((start, Tok::Op(op)));
            }
            b'0'..=b'9' => {
                while b.get(i).is_some_and(|c| c.is_ascii_digit()) {
                    i += 1;
                }
                if b.get(i) == Some(&b'.') {
                    i += 1;
                    if !b.get(i).is_some_and(|c| c.is_ascii_digit()) {
                        return Err(err("expected digits after '.'", i));
                    }
                    while b.get(i).is_some_and(|c| c.is_ascii_digit()) {
                        i += 1;
                    }
                }
                let text = s.get(start..i).ok_or_else(|| err("bad number", start))?;
                let v: f64 = text.parse().map_err(|_| err("bad number", start))?;
                out.push((start, Tok::Num(v)));
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while b
                    .get(i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                {
                    i += 1;
                }
                let text = s.get(start..i).ok_or_else(|| err("bad name", start))?;
                out.push((start, Tok::Ident(text.to_string())));
            }
            _ => return Err(err("unexpected character", start)),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.1)
    }
    fn at(&self) -> usize {
        self.toks.get(self.pos).map(|t| t.0).unwrap_or(self.end)
    }
    fn err<T>(&self, what: &str) -> Result<T, FilterError> {
        Err(FilterError {
            what: what.into(),
            at: self.at(),
        })
    }
    fn keyword(&mut self, kw: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Ident(s)) if s == kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expr(&mut self, depth: usize) -> Result<Expr, FilterError> {
        let mut left = self.and(depth)?;
        while self.keyword("or") {
            let right = self.and(depth)?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }
    fn and(&mut self, depth: usize) -> Result<Expr, FilterError> {
        let mut left = self.unary(depth)?;
        while self.keyword("and") {
            let right = self.unary(depth)?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }
    fn unary(&mut self, depth: usize) -> Result<Expr, FilterError> {
        if depth >= MAX_DEPTH {
            return self.err("nesting too deep");
        }
        if self.keyword("not") {
            return Ok(Expr::Not(Box::new(self.unary(depth + 1)?)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let e = self.expr(depth + 1)?;
            if self.peek() != Some(&Tok::RParen) {
                return self.err("expected ')'");
            }
            self.pos += 1;
            return Ok(e);
        }
        let a = self.operand()?;
        let op = match self.peek() {
            Some(Tok::Op(op)) => *op,
            _ => return self.err("expected a comparison operator"),
        };
        self.pos += 1;
        let b = self.operand()?;
        Ok(Expr::Cmp(a, op, b))
    }
    fn operand(&mut self) -> Result<Operand, FilterError> {
        let r = match self.peek() {
            Some(Tok::Num(v)) => Operand::Num(*v),
            Some(Tok::Ident(name)) => match Var::from_name(name) {
                Some(v) => Operand::Var(v),
                None => {
                    return self.err(&format!(
                        "unknown variable {name:?} (expected codec, width, height, fps, bitrate, gop or bframes)"
                    ));
                }
            },
            _ => return self.err("expected a variable or a number"),
        };
        self.pos += 1;
        Ok(r)
    }
}

/// Parses an expression.
pub fn parse(s: &str) -> Result<Expr, FilterError> {
    if s.len() > MAX_FILTER_LEN {
        return Err(FilterError {
            what: format!("longer than {MAX_FILTER_LEN} bytes"),
            at: MAX_FILTER_LEN,
        });
    }
    let toks = lex(s)?;
    let mut p = Parser {
        toks,
        pos: 0,
        end: s.len(),
    };
    if p.peek().is_none() {
        return p.err("empty expression");
    }
    let e = p.expr(0)?;
    if p.peek().is_some() {
        return p.err("unexpected trailing input");
    }
    Ok(e)
}

impl Expr {
    /// Evaluates against source values.
    pub fn eval(&self, v: &Vars) -> bool {
        let val = |o: &Operand| match o {
            Operand::Num(n) => *n,
            Operand::Var(var) => match var {
                Var::Codec => v.codec,
                Var::Width => v.width,
                Var::Height => v.height,
                Var::Fps => v.fps,
                Var::Bitrate => v.bitrate,
                Var::Gop => v.gop,
                Var::Bframes => v.bframes,
            },
        };
        match self {
            Expr::Cmp(a, op, b) => {
                let (a, b) = (val(a), val(b));
                match op {
                    Op::Gt => a > b,
                    Op::Ge => a >= b,
                    Op::Lt => a < b,
                    Op::Le => a <= b,
                    Op::Eq => a == b,
                    Op::Ne => a != b,
                }
            }
            Expr::Not(e) => !e.eval(v),
            Expr::And(a, b) => a.eval(v) && b.eval(v),
            Expr::Or(a, b) => a.eval(v) || b.eval(v),
        }
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Var(v) => f.write_str(v.name()),
            Operand::Num(n) => write!(f, "{n}"),
        }
    }
}

/// Fully parenthesised canonical text, which parses back to the same tree.
/// Canonical text with only the parentheses the grammar needs, so printing never nests
/// deeper than the text it was parsed from (the parser caps nesting at [`MAX_DEPTH`]).
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Binding strength: `or` 1 < `and` 2 < `not` / comparison 3.
        fn strength(e: &Expr) -> u8 {
            match e {
                Expr::Or(..) => 1,
                Expr::And(..) => 2,
                Expr::Not(_) | Expr::Cmp(..) => 3,
            }
        }
        // Writes `e` where the grammar expects something binding at least `min`.
        fn child(f: &mut fmt::Formatter<'_>, e: &Expr, min: u8) -> fmt::Result {
            if strength(e) >= min {
                write!(f, "{e}")
            } else {
                write!(f, "({e})")
            }
        }
        match self {
            Expr::Cmp(a, op, b) => write!(f, "{a} {} {b}", op.text()),
            Expr::Not(e) => {
                f.write_str("not ")?;
                child(f, e, 3)
            }
            // Both operators associate to the left: a chain's left side needs no
            // parentheses, its right side is one level tighter.
            Expr::And(a, b) => {
                child(f, a, 2)?;
                f.write_str(" and ")?;
                child(f, b, 3)
            }
            Expr::Or(a, b) => {
                child(f, a, 1)?;
                f.write_str(" or ")?;
                child(f, b, 2)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_parses_and_evaluates() {
        let e = parse("bitrate > 4000 or bframes > 0").unwrap();
        let mut v = Vars {
            bitrate: 3000.0,
            ..Vars::default()
        };
        assert!(!e.eval(&v));
        v.bframes = 1.0;
        assert!(e.eval(&v));
        v = Vars {
            bitrate: 4001.0,
            ..Vars::default()
        };
        assert!(e.eval(&v));
    }

    #[test]
    fn precedence_and_not() {
        let e = parse("not (codec == 2) and width >= 1920 or fps < 24.5").unwrap();
        let v = Vars {
            codec: 3.0,
            width: 1920.0,
            fps: 30.0,
            ..Vars::default()
        };
        assert!(e.eval(&v));
        assert!(matches!(e, Expr::Or(..)), "and binds tighter than or");
    }

    #[test]
    fn rejects_typos_with_position() {
        let e = parse("bitrat > 4000").unwrap_err();
        assert!(e.what.contains("bitrat"));
        assert_eq!(e.at, 0);
        assert!(parse("").is_err());
        assert!(parse("bitrate >").is_err());
        assert!(parse("bitrate = 3").is_err());
        assert!(parse("(width > 1").is_err());
        assert!(parse("width > 1 height < 2").is_err());
        assert!(parse("width > 1.").is_err());
        assert!(parse(&"(".repeat(100)).is_err());
        assert!(parse(&"a".repeat(MAX_FILTER_LEN + 1)).is_err());
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "bitrate > 4000 or bframes > 0",
            "not not (gop != 2000) and height <= 720",
            "1 < 2.25",
        ] {
            let e = parse(s).unwrap();
            assert_eq!(parse(&e.to_string()).unwrap(), e, "{s}");
        }
    }
}

#[cfg(test)]
mod canonical_tests {
    use super::*;

    #[test]
    fn canonical_text_adds_no_nesting() {
        // Found by the control_adapt_filters fuzz target: a long `and` chain printed with a
        // pair of parentheses per operator nested deeper than the parser accepts.
        let long = (0..40)
            .map(|i| format!("width > {i}"))
            .collect::<Vec<_>>()
            .join(" and ");
        let e = parse(&long).unwrap();
        assert_eq!(e.to_string(), long);
        assert_eq!(parse(&e.to_string()).unwrap(), e);
        for text in [
            "not (fps < 2 or width > 3)",
            "(bitrate > 1 or gop > 2) and not bframes > 0",
            "bitrate > 1 or gop > 2 and codec == 2",
            "width > 1 and (height > 2 and fps > 3)",
            "not not width > 1",
        ] {
            let e = parse(text).unwrap();
            let printed = e.to_string();
            assert_eq!(parse(&printed).unwrap(), e, "{text} -> {printed}");
        }
    }
}
