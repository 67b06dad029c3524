//! Span trees compared as trees: parents come from `parentSpanId` links, and a golden JSON file
//! (format: `tests/fixtures/trees/README.md`) says which spans must exist under which parent,
//! with which kind, status and attributes. Ids and timestamps are ignored; children match in any
//! order (a bipartite matching, so two siblings with the same name can't steal each other's
//! match); attributes not named in the golden are ignored. Every span must be accounted for:
//! a missing, extra or re-parented span fails.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;
use serde_json::Value as Json;

use crate::spans::{RecordedSpan, SpanSource, kind_name, status_name};

/// A golden forest, as loaded from a `*.json` file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedForest {
    /// Free text: what this golden pins down.
    #[serde(default)]
    pub description: Option<String>,
    pub roots: Vec<ExpectedNode>,
}

/// One expected span and its expected children.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedNode {
    pub name: String,
    /// `internal`, `server`, `client`, `producer`, `consumer`, `unspecified`.
    #[serde(default)]
    pub kind: Option<String>,
    /// `unset`, `ok`, `error`.
    #[serde(default)]
    pub status: Option<String>,
    /// Span attributes that must match (see the README for matcher objects).
    #[serde(default)]
    pub attributes: BTreeMap<String, Json>,
    /// Resource attributes that must match.
    #[serde(default)]
    pub resource: BTreeMap<String, Json>,
    /// Roots only: `true` = the span has a parent id that is not in the set (it continued a
    /// caller's `traceparent`); `false` = a true root with no parent id.
    #[serde(default)]
    pub external_parent: Option<bool>,
    /// Exactly these children (none when omitted).
    #[serde(default)]
    pub children: Vec<ExpectedNode>,
}

impl ExpectedForest {
    /// Loads a golden; relative paths are tried as given, then under `tests/fixtures/trees/`.
    pub fn load(path: impl AsRef<Path>) -> anyhow::Result<Self> {
        let path = resolve_golden(path.as_ref());
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("reading golden {}: {e}", path.display()))?;
        let forest = Self::from_json_str(&text)
            .map_err(|e| anyhow::anyhow!("golden {}: {e}", path.display()))?;
        Ok(forest)
    }

    /// Parses a golden and validates its matchers (bad regexes, unknown `$` keys, kind names).
    pub fn from_json_str(text: &str) -> anyhow::Result<Self> {
        let forest: Self = serde_json::from_str(text)?;
        for root in &forest.roots {
            root.validate()?;
        }
        Ok(forest)
    }

    /// Every attribute key the golden mentions: what the actual forest is rendered with.
    fn attribute_keys(&self) -> BTreeSet<String> {
        fn walk(n: &ExpectedNode, out: &mut BTreeSet<String>) {
            out.extend(n.attributes.keys().cloned());
            for c in &n.children {
                walk(c, out);
            }
        }
        let mut out = BTreeSet::new();
        for r in &self.roots {
            walk(r, &mut out);
        }
        out
    }
}

impl ExpectedNode {
    fn validate(&self) -> anyhow::Result<()> {
        if let Some(k) = &self.kind {
            anyhow::ensure!(
                KINDS.contains(&k.as_str()),
                "span `{}`: unknown kind `{k}`",
                self.name
            );
        }
        if let Some(s) = &self.status {
            anyhow::ensure!(
                STATUSES.contains(&s.as_str()),
                "span `{}`: unknown status `{s}`",
                self.name
            );
        }
        for (key, m) in self.attributes.iter().chain(&self.resource) {
            Matcher::parse(m).map_err(|e| anyhow::anyhow!("span `{}`, `{key}`: {e}", self.name))?;
        }
        self.children.iter().try_for_each(ExpectedNode::validate)
    }
}

const KINDS: &[&str] = &[
    "unspecified",
    "internal",
    "server",
    "client",
    "producer",
    "consumer",
];
const STATUSES: &[&str] = &["unset", "ok", "error"];
const VALUE_TYPES: &[&str] = &["string", "int", "double", "bool", "array", "object"];

/// How one expected attribute value is checked.
#[derive(Debug)]
enum Matcher {
    Equals(Json),
    Absent,
    Present,
    Type(String),
    Regex(Regex),
    /// The actual value is a string holding JSON equal to this (content attributes).
    JsonString(Json),
}

impl Matcher {
    fn parse(v: &Json) -> Result<Self, String> {
        let Json::Object(map) = v else {
            return Ok(Self::Equals(v.clone()));
        };
        if map.is_empty() || !map.keys().all(|k| k.starts_with('$')) {
            return Ok(Self::Equals(v.clone()));
        }
        let [(key, arg)] = map.iter().collect::<Vec<_>>()[..] else {
            return Err("a matcher object has exactly one `$` key".into());
        };
        match (key.as_str(), arg) {
            ("$absent", Json::Bool(true)) => Ok(Self::Absent),
            ("$present", Json::Bool(true)) => Ok(Self::Present),
            ("$type", Json::String(t)) if VALUE_TYPES.contains(&t.as_str()) => {
                Ok(Self::Type(t.clone()))
            }
            ("$regex", Json::String(r)) => Regex::new(&format!("^(?:{r})$"))
                .map(Self::Regex)
                .map_err(|e| format!("bad $regex: {e}")),
            ("$json", j) => Ok(Self::JsonString(j.clone())),
            _ => Err(format!("unknown matcher {v}")),
        }
    }

    /// `None` when `actual` satisfies the matcher, else what was wrong.
    fn mismatch(&self, actual: Option<&Json>) -> Option<String> {
        let shown = |a: Option<&Json>| a.map_or_else(|| "absent".to_owned(), |v| v.to_string());
        let ok = match (self, actual) {
            (Self::Absent, a) => a.is_none(),
            (_, None) => false,
            (Self::Present, Some(_)) => true,
            (Self::Equals(e), Some(a)) => e == a,
            (Self::Type(t), Some(a)) => json_type(a) == t,
            (Self::Regex(r), Some(Json::String(s))) => r.is_match(s),
            (Self::Regex(_), Some(_)) => false,
            (Self::JsonString(e), Some(Json::String(s))) => {
                serde_json::from_str::<Json>(s).is_ok_and(|parsed| &parsed == e)
            }
            (Self::JsonString(_), Some(_)) => false,
        };
        (!ok).then(|| format!("expected {}, got {}", self.describe(), shown(actual)))
    }

    fn describe(&self) -> String {
        match self {
            Self::Equals(v) => v.to_string(),
            Self::Absent => "absent".into(),
            Self::Present => "present".into(),
            Self::Type(t) => format!("a {t}"),
            Self::Regex(r) => format!("a string matching /{}/", r.as_str()),
            Self::JsonString(j) => format!("a JSON string equal to {j}"),
        }
    }
}

fn json_type(v: &Json) -> &'static str {
    match v {
        Json::String(_) => "string",
        Json::Number(n) if n.is_f64() => "double",
        Json::Number(_) => "int",
        Json::Bool(_) => "bool",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
        Json::Null => "null",
    }
}

/// Where goldens live: `tests/fixtures/trees/`.
pub fn goldens_dir() -> PathBuf {
    crate::clients::fixtures_dir().join("trees")
}

/// A golden path as given if it exists, else relative to [`goldens_dir`].
pub fn resolve_golden(path: &Path) -> PathBuf {
    if path.is_absolute() || path.exists() {
        path.to_path_buf()
    } else {
        goldens_dir().join(path)
    }
}

/// Actual spans arranged by parent links.
#[derive(Debug, Clone)]
pub struct SpanForest {
    nodes: Vec<ForestNode>,
    roots: Vec<usize>,
}

#[derive(Debug, Clone)]
struct ForestNode {
    span: RecordedSpan,
    children: Vec<usize>,
    /// Has a parent id, but that parent is not among the spans.
    external_parent: bool,
}

impl SpanForest {
    /// Builds the forest. A parent is looked up by (trace id, span id); a span whose parent is
    /// missing becomes a root marked as having an external parent. A span id exported twice
    /// stays twice (and so fails any golden): a span must end exactly once.
    pub fn from_spans(spans: Vec<RecordedSpan>) -> Self {
        let mut by_id: HashMap<(Vec<u8>, Vec<u8>), usize> = HashMap::new();
        for (i, s) in spans.iter().enumerate() {
            by_id
                .entry((s.span.trace_id.clone(), s.span.span_id.clone()))
                .or_insert(i);
        }
        let mut nodes: Vec<ForestNode> = spans
            .into_iter()
            .map(|span| ForestNode {
                span,
                children: Vec::new(),
                external_parent: false,
            })
            .collect();
        let mut roots = Vec::new();
        for i in 0..nodes.len() {
            let span = &nodes[i].span.span;
            if span.parent_span_id.is_empty() {
                roots.push(i);
                continue;
            }
            match by_id.get(&(span.trace_id.clone(), span.parent_span_id.clone())) {
                Some(&p) if p != i => nodes[p].children.push(i),
                _ => {
                    nodes[i].external_parent = true;
                    roots.push(i);
                }
            }
        }
        Self { nodes, roots }
    }

    pub fn from_source<S: SpanSource + ?Sized>(source: &S) -> Self {
        Self::from_spans(source.recorded_spans())
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The root spans.
    pub fn roots(&self) -> impl Iterator<Item = &RecordedSpan> {
        self.roots.iter().map(|&i| &self.nodes[i].span)
    }

    /// The direct children of the first span named `name` (handy for ad-hoc assertions).
    pub fn children_of(&self, name: &str) -> Vec<&RecordedSpan> {
        self.nodes
            .iter()
            .find(|n| n.span.name() == name)
            .map(|n| n.children.iter().map(|&c| &self.nodes[c].span).collect())
            .unwrap_or_default()
    }

    /// Compares against a golden. `Err` lists every problem found and shows the actual forest.
    pub fn check(&self, expected: &ExpectedForest) -> Result<(), ForestMismatch> {
        let problems = self.match_children(&expected.roots, &self.roots, "<root>");
        if problems.is_empty() {
            return Ok(());
        }
        let keys = expected.attribute_keys();
        Err(ForestMismatch {
            golden: None,
            problems,
            actual: self.render(&keys),
        })
    }

    /// An indented text view: name, kind, status and the given attribute keys.
    pub fn render(&self, keys: &BTreeSet<String>) -> String {
        let mut out = String::new();
        let mut roots = self.roots.clone();
        roots.sort_by(|&a, &b| self.nodes[a].span.name().cmp(self.nodes[b].span.name()));
        for r in roots {
            self.render_node(r, 0, keys, &mut out);
        }
        if out.is_empty() {
            out.push_str("(no spans)\n");
        }
        out
    }

    fn render_node(&self, i: usize, depth: usize, keys: &BTreeSet<String>, out: &mut String) {
        let node = &self.nodes[i];
        let s = &node.span;
        let _ = write!(
            out,
            "{:indent$}- {} [{}, {}]",
            "",
            s.name(),
            kind_name(s.kind()),
            status_name(s.status_code()),
            indent = depth * 2
        );
        if node.external_parent {
            out.push_str(" (parent outside the set)");
        }
        for k in keys {
            if let Some(v) = s.attr(k) {
                let _ = write!(out, " {k}={v}");
            }
        }
        out.push('\n');
        let mut children = node.children.clone();
        children.sort_by(|&a, &b| self.nodes[a].span.name().cmp(self.nodes[b].span.name()));
        for c in children {
            self.render_node(c, depth + 1, keys, out);
        }
    }

    /// Problems with one expected node against one actual node, children included.
    fn match_node(&self, exp: &ExpectedNode, act: usize, path: &str) -> Vec<String> {
        let node = &self.nodes[act];
        let span = &node.span;
        let here = format!("{path} > {}", exp.name);
        let mut problems = Vec::new();
        if span.name() != exp.name {
            problems.push(format!(
                "{path}: expected span `{}`, got `{}`",
                exp.name,
                span.name()
            ));
            return problems;
        }
        if let Some(k) = &exp.kind {
            let got = kind_name(span.kind());
            if got != k {
                problems.push(format!("{here}: kind expected {k}, got {got}"));
            }
        }
        if let Some(st) = &exp.status {
            let got = status_name(span.status_code());
            if got != st {
                problems.push(format!("{here}: status expected {st}, got {got}"));
            }
        }
        if let Some(ext) = exp.external_parent
            && ext != node.external_parent
        {
            problems.push(format!(
                "{here}: external_parent expected {ext}, got {}",
                node.external_parent
            ));
        }
        for (key, m) in &exp.attributes {
            // Validated at load time; an unparsable matcher here is a programming error.
            let Ok(m) = Matcher::parse(m) else { continue };
            if let Some(why) = m.mismatch(span.attr(key).as_ref()) {
                problems.push(format!("{here}: attribute `{key}` {why}"));
            }
        }
        for (key, m) in &exp.resource {
            let Ok(m) = Matcher::parse(m) else { continue };
            if let Some(why) = m.mismatch(span.resource_attr(key).as_ref()) {
                problems.push(format!("{here}: resource attribute `{key}` {why}"));
            }
        }
        problems.extend(self.match_children(&exp.children, &node.children, &here));
        problems
    }

    /// Matches expected children to actual ones in any order (maximum bipartite matching), then
    /// explains what is left over: missing, unexpected, or closest-but-different spans.
    fn match_children(
        &self,
        expected: &[ExpectedNode],
        actual: &[usize],
        path: &str,
    ) -> Vec<String> {
        let fits: Vec<Vec<bool>> = expected
            .iter()
            .map(|e| {
                actual
                    .iter()
                    .map(|&a| self.match_node(e, a, path).is_empty())
                    .collect()
            })
            .collect();
        let assignment = max_matching(&fits, actual.len());
        let mut used = vec![false; actual.len()];
        for a in assignment.iter().flatten() {
            used[*a] = true;
        }
        let mut problems = Vec::new();
        for (ei, exp) in expected.iter().enumerate() {
            if assignment[ei].is_some() {
                continue;
            }
            // The closest unused actual span with the same name explains best what differs.
            let closest = actual
                .iter()
                .enumerate()
                .filter(|(ai, a)| !used[*ai] && self.nodes[**a].span.name() == exp.name)
                .map(|(ai, &a)| (ai, self.match_node(exp, a, path)))
                .min_by_key(|(_, p)| p.len());
            match closest {
                Some((ai, p)) => {
                    used[ai] = true;
                    problems.extend(p);
                }
                None => problems.push(format!("{path}: missing span `{}`", exp.name)),
            }
        }
        for (ai, &a) in actual.iter().enumerate() {
            if !used[ai] {
                problems.push(format!(
                    "{path}: unexpected span `{}`",
                    self.nodes[a].span.name()
                ));
            }
        }
        problems
    }

    /// A golden (in the README's format) describing this forest with the given attribute keys:
    /// a starting point for a new golden, to be reviewed by hand, never blessed blindly.
    pub fn to_golden(&self, attribute_keys: &[&str]) -> Json {
        let roots: Vec<Json> = self
            .roots
            .iter()
            .map(|&r| self.node_to_golden(r, attribute_keys, true))
            .collect();
        serde_json::json!({ "roots": roots })
    }

    fn node_to_golden(&self, i: usize, keys: &[&str], is_root: bool) -> Json {
        let node = &self.nodes[i];
        let s = &node.span;
        let mut obj = serde_json::Map::new();
        obj.insert("name".into(), s.name().into());
        obj.insert("kind".into(), kind_name(s.kind()).into());
        obj.insert("status".into(), status_name(s.status_code()).into());
        let attrs: serde_json::Map<String, Json> = keys
            .iter()
            .filter_map(|k| s.attr(k).map(|v| ((*k).to_owned(), v)))
            .collect();
        if !attrs.is_empty() {
            obj.insert("attributes".into(), Json::Object(attrs));
        }
        if is_root {
            obj.insert("external_parent".into(), node.external_parent.into());
        }
        if !node.children.is_empty() {
            let children: Vec<Json> = node
                .children
                .iter()
                .map(|&c| self.node_to_golden(c, keys, false))
                .collect();
            obj.insert("children".into(), Json::Array(children));
        }
        Json::Object(obj)
    }
}

/// Kuhn's augmenting-path matching: `fits[e][a]` says expected `e` may take actual `a`.
/// Returns, per expected node, the actual node it got.
fn max_matching(fits: &[Vec<bool>], n_actual: usize) -> Vec<Option<usize>> {
    fn augment(
        e: usize,
        fits: &[Vec<bool>],
        seen: &mut [bool],
        owner: &mut [Option<usize>],
    ) -> bool {
        for a in 0..owner.len() {
            if fits[e][a] && !seen[a] {
                seen[a] = true;
                if owner[a].is_none_or(|other| augment(other, fits, seen, owner)) {
                    owner[a] = Some(e);
                    return true;
                }
            }
        }
        false
    }
    let mut owner: Vec<Option<usize>> = vec![None; n_actual];
    for e in 0..fits.len() {
        let mut seen = vec![false; n_actual];
        augment(e, fits, &mut seen, &mut owner);
    }
    let mut assignment = vec![None; fits.len()];
    for (a, e) in owner.iter().enumerate() {
        if let Some(e) = e {
            assignment[*e] = Some(a);
        }
    }
    assignment
}

/// Why an actual forest does not match a golden.
#[derive(Debug, Clone)]
pub struct ForestMismatch {
    pub golden: Option<PathBuf>,
    /// One line per problem, each starting with the path of span names where it was found.
    pub problems: Vec<String>,
    /// The actual forest, rendered with the attribute keys the golden mentions.
    pub actual: String,
}

impl ForestMismatch {
    /// True when some problem line contains `needle` (for tests of the comparator itself).
    pub fn mentions(&self, needle: &str) -> bool {
        self.problems.iter().any(|p| p.contains(needle))
    }
}

impl fmt::Display for ForestMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.golden {
            Some(g) => writeln!(f, "span forest does not match {}:", g.display())?,
            None => writeln!(f, "span forest does not match the golden:")?,
        }
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        writeln!(f, "actual forest:")?;
        f.write_str(&self.actual)
    }
}

impl std::error::Error for ForestMismatch {}

/// Compares `actual` with the golden at `expected_json_path` (see [`resolve_golden`]).
///
/// # Panics
/// When the golden can't be read or is invalid: a broken golden must never pass as a mismatch.
pub fn check_span_forest<S: SpanSource + ?Sized>(
    actual: &S,
    expected_json_path: impl AsRef<Path>,
) -> Result<(), ForestMismatch> {
    let path = resolve_golden(expected_json_path.as_ref());
    let expected = match ExpectedForest::load(&path) {
        Ok(e) => e,
        Err(e) => panic!("{e:#}"),
    };
    SpanForest::from_source(actual)
        .check(&expected)
        .map_err(|mut m| {
            m.golden = Some(path);
            m
        })
}

/// Asserts that `actual` matches the golden at `expected_json_path`, printing every problem and
/// the actual forest when it doesn't.
///
/// # Panics
/// On any mismatch, or when the golden can't be read.
pub fn assert_span_forest<S: SpanSource + ?Sized>(
    actual: &S,
    expected_json_path: impl AsRef<Path>,
) {
    if let Err(m) = check_span_forest(actual, expected_json_path) {
        panic!("{m}");
    }
}
