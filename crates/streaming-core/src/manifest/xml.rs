//! A small owned XML tree over `quick-xml` events: enough to edit an MPD
//! and write it back with everything it does not touch (comments, unknown
//! elements and attributes, their original escaping) preserved, except what
//! a browser would run or fetch from it (see [`parse`]).

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::reader::NsReader;
use quick_xml::{Writer, XmlVersion};

use super::ManifestError;

/// Elements nested deeper than this are refused (an MPD needs about six).
const MAX_DEPTH: usize = 32;

/// Namespaces whose elements a browser renders, runs or follows when it
/// opens an XML document, and no DASH player reads: XHTML, SVG, MathML,
/// XSLT and XInclude.
const ACTIVE_NAMESPACES: [&[u8]; 5] = [
    b"http://www.w3.org/1999/xhtml",
    b"http://www.w3.org/2000/svg",
    b"http://www.w3.org/1998/Math/MathML",
    b"http://www.w3.org/1999/XSL/Transform",
    b"http://www.w3.org/2001/XInclude",
];

fn is_active(namespace: &ResolveResult<'_>) -> bool {
    matches!(namespace, ResolveResult::Bound(Namespace(uri)) if ACTIVE_NAMESPACES.contains(uri))
}

/// One element and what it contains.
#[derive(Debug, Clone)]
pub(super) struct Element {
    start: BytesStart<'static>,
    pub(super) children: Vec<Node>,
}

/// A child of an element, or a top-level item of the document.
#[derive(Debug, Clone)]
pub(super) enum Node {
    Element(Element),
    /// Text, comments, CDATA, processing instructions, the declaration:
    /// written back byte for byte.
    Other(Event<'static>),
}

pub(super) fn malformed(error: impl std::fmt::Display) -> ManifestError {
    ManifestError::Malformed(error.to_string())
}

/// Parses `bytes` (UTF-8) into the document's top-level nodes. Document
/// type declarations are refused (no entity tricks), as are documents
/// nested deeper than [`MAX_DEPTH`]. Processing instructions (such as
/// `xml-stylesheet`) and elements in [`ACTIVE_NAMESPACES`], with all they
/// contain, are dropped: the manifest is served from this service's origin.
pub(super) fn parse(bytes: &[u8]) -> Result<Vec<Node>, ManifestError> {
    let text = std::str::from_utf8(bytes).map_err(|_| malformed("the manifest is not UTF-8"))?;
    let mut reader = NsReader::from_str(text);
    let mut top = Vec::new();
    let mut open: Vec<Element> = Vec::new();
    let not_well_formed = |e: quick_xml::Error| malformed(format_args!("not well-formed XML: {e}"));
    loop {
        let (namespace, event) = reader.read_resolved_event().map_err(not_well_formed)?;
        let active = is_active(&namespace);
        let node = match event {
            Event::Eof => break,
            Event::DocType(_) => return Err(malformed("document type declarations are not allowed")),
            Event::PI(_) => continue,
            Event::Empty(_) if active => continue,
            Event::Start(start) if active => {
                reader.read_to_end(start.name()).map_err(not_well_formed)?;
                continue;
            }
            Event::Start(start) => {
                if open.len() >= MAX_DEPTH {
                    return Err(malformed("the manifest is nested too deeply"));
                }
                open.push(Element { start: start.into_owned(), children: Vec::new() });
                continue;
            }
            Event::End(_) => match open.pop() {
                Some(element) => Node::Element(element),
                None => return Err(malformed("an end tag without a start tag")),
            },
            Event::Empty(start) => Node::Element(Element { start: start.into_owned(), children: Vec::new() }),
            other => Node::Other(other.into_owned()),
        };
        match open.last_mut() {
            Some(parent) => parent.children.push(node),
            None => top.push(node),
        }
    }
    if !open.is_empty() {
        return Err(malformed("the manifest ends inside an element"));
    }
    Ok(top)
}

/// Writes `nodes` back out.
pub(super) fn write(nodes: &[Node]) -> Result<Vec<u8>, ManifestError> {
    let mut writer = Writer::new(Vec::new());
    for node in nodes {
        write_node(&mut writer, node).map_err(|e| malformed(format_args!("cannot write the manifest: {e}")))?;
    }
    Ok(writer.into_inner())
}

fn write_node(writer: &mut Writer<Vec<u8>>, node: &Node) -> std::io::Result<()> {
    match node {
        Node::Other(event) => writer.write_event(event.borrow()),
        Node::Element(element) if element.children.is_empty() => {
            writer.write_event(Event::Empty(element.start.borrow()))
        }
        Node::Element(element) => {
            writer.write_event(Event::Start(element.start.borrow()))?;
            for child in &element.children {
                write_node(writer, child)?;
            }
            writer.write_event(Event::End(element.start.to_end()))
        }
    }
}

impl Element {
    /// A new element without attributes or children.
    pub(super) fn new(name: &'static str) -> Self {
        Self { start: BytesStart::new(name), children: Vec::new() }
    }

    /// Whether the element's local name (namespace prefix ignored) is `name`.
    pub(super) fn is(&self, name: &str) -> bool {
        self.start.local_name().as_ref() == name.as_bytes()
    }

    /// The unescaped value of attribute `name`.
    pub(super) fn attr(&self, name: &str) -> Result<Option<String>, ManifestError> {
        match self.start.try_get_attribute(name).map_err(malformed)? {
            None => Ok(None),
            Some(attribute) => {
                Ok(Some(attribute.normalized_value(XmlVersion::Implicit1_0).map_err(malformed)?.into_owned()))
            }
        }
    }

    /// Sets attribute `name` to `value` (escaped as needed), keeping the others as they were.
    pub(super) fn set_attr(&mut self, name: &str, value: &str) {
        let mut start = BytesStart::new(String::from_utf8_lossy(self.start.name().as_ref()).into_owned());
        for attribute in self.start.attributes().flatten() {
            if attribute.key.as_ref() != name.as_bytes() {
                start.push_attribute(attribute);
            }
        }
        start.push_attribute((name, value));
        self.start = start;
    }

    /// Whether the element has an attribute named `name`.
    pub(super) fn has_attr(&self, name: &str) -> bool {
        matches!(self.start.try_get_attribute(name), Ok(Some(_)))
    }

    /// The first child element named `name`.
    pub(super) fn child(&self, name: &str) -> Option<&Element> {
        self.elements().find(|element| element.is(name))
    }

    /// The child elements.
    pub(super) fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|node| match node {
            Node::Element(element) => Some(element),
            Node::Other(_) => None,
        })
    }

    /// The child elements, mutably.
    pub(super) fn elements_mut(&mut self) -> impl Iterator<Item = &mut Element> {
        self.children.iter_mut().filter_map(|node| match node {
            Node::Element(element) => Some(element),
            Node::Other(_) => None,
        })
    }

    /// Removes every child element whose name is in `names`, with the
    /// indentation before it.
    pub(super) fn remove(&mut self, names: &[&str]) {
        self.splice(names, None);
    }

    /// Puts `element` where the first child named in `names` was, removing
    /// all of them; `element` is not placed (and returned) when there was none.
    pub(super) fn replace(&mut self, names: &[&str], element: Element) -> Result<(), Element> {
        self.splice(names, Some(element)).map_or(Ok(()), Err)
    }

    fn splice(&mut self, names: &[&str], mut replacement: Option<Element>) -> Option<Element> {
        let matches = |node: &Node| matches!(node, Node::Element(element) if names.iter().any(|name| element.is(name)));
        let mut kept = Vec::with_capacity(self.children.len());
        for node in std::mem::take(&mut self.children) {
            if !matches(&node) {
                kept.push(node);
            } else if let Some(element) = replacement.take() {
                kept.push(Node::Element(element));
            } else if matches!(kept.last(), Some(Node::Other(Event::Text(text))) if text.iter().all(u8::is_ascii_whitespace))
            {
                kept.pop();
            }
        }
        self.children = kept;
        replacement
    }

    /// The element's text content, references resolved, trimmed.
    pub(super) fn text(&self) -> Result<String, ManifestError> {
        let mut text = String::new();
        for node in &self.children {
            match node {
                Node::Other(Event::Text(part)) => text.push_str(&part.decode().map_err(malformed)?),
                Node::Other(Event::CData(part)) => text.push_str(&part.decode().map_err(malformed)?),
                Node::Other(Event::GeneralRef(reference)) => {
                    if let Some(ch) = reference.resolve_char_ref().map_err(malformed)? {
                        text.push(ch);
                    } else {
                        let name = reference.decode().map_err(malformed)?;
                        text.push_str(
                            resolve_predefined_entity(&name)
                                .ok_or_else(|| malformed(format_args!("unknown entity &{name};")))?,
                        );
                    }
                }
                Node::Other(_) => {}
                Node::Element(_) => return Err(malformed("markup inside a text element")),
            }
        }
        Ok(text.trim().to_owned())
    }

    /// Replaces the element's content with `text` (escaped).
    pub(super) fn set_text(&mut self, text: &str) {
        self.children = vec![Node::Other(Event::Text(quick_xml::events::BytesText::new(text).into_owned()))];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_round_trips_with_comments_and_escapes_intact() {
        let text = "<?xml version=\"1.0\"?>\n<!-- c --><A x=\"1&amp;2\"><B/><C>t &lt; u &#x41;</C><![CDATA[raw]]></A>";
        let nodes = parse(text.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(write(&nodes).unwrap()).unwrap(), text);
        let Some(Node::Element(a)) = nodes.iter().find(|n| matches!(n, Node::Element(_))) else { panic!() };
        assert_eq!(a.attr("x").unwrap().as_deref(), Some("1&2"));
        assert_eq!(a.child("C").unwrap().text().unwrap(), "t < u A");
    }

    #[test]
    fn edits_escape_and_keep_the_other_attributes() {
        let mut nodes = parse(b"<A a=\"&quot;x&quot;\" b=\"2\"/>").unwrap();
        let Node::Element(a) = &mut nodes[0] else { panic!() };
        a.set_attr("b", "u?x=1&y=<2>");
        assert_eq!(
            String::from_utf8(write(&nodes).unwrap()).unwrap(),
            "<A a=\"&quot;x&quot;\" b=\"u?x=1&amp;y=&lt;2&gt;\"/>"
        );
    }

    #[test]
    fn what_a_browser_would_run_is_dropped_and_the_rest_kept() {
        let text =
            "<?xml version=\"1.0\"?><?xml-stylesheet href=\"x.xsl\"?><MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\">\
            <h:p xmlns:h=\"http://www.w3.org/1999/xhtml\"><h:script>x</h:script></h:p>\
            <P><svg xmlns=\"http://www.w3.org/2000/svg\"><g><script/></g></svg><Q/></P>\
            <x:include xmlns:x=\"http://www.w3.org/2001/XInclude\"/>\
            <c:pssh xmlns:c=\"urn:mpeg:cenc:2013\">AA</c:pssh><u:v>kept</u:v></MPD>";
        let written = String::from_utf8(write(&parse(text.as_bytes()).unwrap()).unwrap()).unwrap();
        assert_eq!(
            written,
            "<?xml version=\"1.0\"?><MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\"><P><Q/></P>\
             <c:pssh xmlns:c=\"urn:mpeg:cenc:2013\">AA</c:pssh><u:v>kept</u:v></MPD>"
        );
        assert!(parse(b"<MPD><svg xmlns=\"http://www.w3.org/2000/svg\"><a></svg></MPD>").is_err(), "still well-formed");
    }

    #[test]
    fn hostile_documents_are_refused() {
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        for bad in ["<!DOCTYPE x [<!ENTITY e \"boom\">]><x>&e;</x>", "<a><b></a>", "<a>", "</a>", deep.as_str()] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(parse(b"\xff<a/>").is_err());
        let mut unknown = parse(b"<a>&nope;</a>").map(|nodes| nodes.into_iter().next());
        if let Ok(Some(Node::Element(a))) = unknown.as_mut() {
            assert!(a.text().is_err());
        }
    }
}
