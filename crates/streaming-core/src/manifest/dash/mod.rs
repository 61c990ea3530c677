//! MPEG-DASH MPDs (ISO/IEC 23009-1) rewritten over a `quick-xml` tree.
//!
//! A `SegmentTemplate` names every segment with one pattern, which cannot
//! carry a signature per object; each Representation's template is
//! therefore expanded into a `SegmentList` of signed URLs. That list
//! carries `@duration` (the mean segment duration) rather than the
//! template's `SegmentTimeline`, and no `@startNumber`, because the common
//! players (ffmpeg's `dashdec` in particular) treat a timeline as "use the
//! template" and index a list by number; the fMP4 segments carry their own
//! timestamps, so playback is exact either way.

mod template;

use template::{too_many_segments, Fields, Template};

use super::xml::{self, malformed, Element, Node};
use super::{resolve, ManifestError, UriTarget};
use crate::domain::ObjectKey;

/// Segment URLs one MPD may expand to: a two-hour movie in 2-second segments
/// with six renditions needs 21 600.
pub const MAX_SEGMENT_URLS: usize = 50_000;

/// Rewrites the MPD `bytes`, stored at `manifest` under `root`: every media
/// URI becomes `sign(UriTarget::Object, key)`. `BaseURL`s are resolved and
/// removed (a single-file Representation gets one signed `BaseURL`);
/// `SegmentList`s (`Initialization`, `RepresentationIndex`, `SegmentURL`
/// `@media`/`@index`) and `SegmentBase` source URLs are signed in place;
/// `SegmentTemplate`s are expanded to signed `SegmentList`s. Everything
/// else is kept as it was.
///
/// # Errors
/// [`ManifestError`] for a malformed or live (`type="dynamic"`) MPD, remote
/// elements (`xlink:href`), a URI outside the movie, more than
/// [`MAX_SEGMENT_URLS`] segments, or a failed signature.
pub fn rewrite_dash(
    bytes: &[u8],
    manifest: &ObjectKey,
    root: &ObjectKey,
    sign: &mut dyn FnMut(UriTarget, &ObjectKey) -> Result<String, ManifestError>,
) -> Result<Vec<u8>, ManifestError> {
    let mut nodes = xml::parse(bytes)?;
    let mut roots = nodes.iter_mut().filter_map(|node| match node {
        Node::Element(element) => Some(element),
        Node::Other(_) => None,
    });
    let mpd = roots.next().filter(|element| element.is("MPD")).ok_or_else(|| malformed("not an MPD"))?;
    if mpd.attr("type")?.as_deref() == Some("dynamic") {
        return Err(malformed("live (dynamic) MPDs are not supported"));
    }
    let mut signer = Signer { manifest, root, sign, urls: 0 };
    let presentation = mpd.attr("mediaPresentationDuration")?.map(|text| parse_duration(&text)).transpose()?;
    let base = joined("", mpd)?;
    mpd.remove(&["BaseURL", "Location", "PatchLocation"]);
    let durations = period_durations(mpd, presentation)?;
    for (period, duration) in mpd.elements_mut().filter(|element| element.is("Period")).zip(durations) {
        signer.period(period, &base, duration)?;
    }
    xml::write(&nodes)
}

/// Signs the URIs of one MPD.
struct Signer<'a> {
    manifest: &'a ObjectKey,
    root: &'a ObjectKey,
    sign: &'a mut dyn FnMut(UriTarget, &ObjectKey) -> Result<String, ManifestError>,
    urls: usize,
}

impl Signer<'_> {
    /// The signed URL of `uri`, relative to `base` (itself relative to the MPD).
    fn object(&mut self, base: &str, uri: &str) -> Result<String, ManifestError> {
        self.urls += 1;
        if self.urls > MAX_SEGMENT_URLS {
            return Err(too_many_segments());
        }
        let key = resolve(self.manifest, self.root, &merge(base, uri)?)?;
        (self.sign)(UriTarget::Object, &key)
    }

    /// The signed URL of the file `base` itself names.
    fn file(&mut self, base: &str) -> Result<String, ManifestError> {
        if base.is_empty() || base.ends_with('/') {
            return Err(malformed("a Representation without a media URL"));
        }
        self.object("", base)
    }

    fn period(&mut self, period: &mut Element, base: &str, duration: Option<f64>) -> Result<(), ManifestError> {
        let base = joined(base, period)?;
        let template = Template::inherit(None, period.child("SegmentTemplate"))?;
        self.above_representations(period, &base)?;
        period.remove(&["BaseURL", "SegmentTemplate"]);
        for set in period.elements_mut().filter(|element| element.is("AdaptationSet")) {
            let base = joined(&base, set)?;
            let template = Template::inherit(template.as_ref(), set.child("SegmentTemplate"))?;
            self.above_representations(set, &base)?;
            set.remove(&["BaseURL", "SegmentTemplate"]);
            for representation in set.elements_mut().filter(|element| element.is("Representation")) {
                self.representation(representation, &base, template.as_ref(), duration)?;
            }
        }
        Ok(())
    }

    /// A Period or AdaptationSet: no remote content or inherited lists; its
    /// `SegmentBase` source URLs signed.
    fn above_representations(&mut self, element: &mut Element, base: &str) -> Result<(), ManifestError> {
        if element.has_attr("xlink:href") {
            return Err(malformed("remote elements (xlink:href) are not supported"));
        }
        if element.child("SegmentList").is_some() {
            return Err(malformed("a SegmentList above a Representation is not supported"));
        }
        for segment_base in element.elements_mut().filter(|child| child.is("SegmentBase")) {
            self.source_urls(segment_base, base)?;
        }
        Ok(())
    }

    fn representation(
        &mut self,
        representation: &mut Element,
        base: &str,
        inherited: Option<&Template>,
        period_duration: Option<f64>,
    ) -> Result<(), ManifestError> {
        let base = joined(base, representation)?;
        let template = Template::inherit(inherited, representation.child("SegmentTemplate"))?;
        if representation.child("SegmentList").is_some() {
            for list in representation.elements_mut().filter(|child| child.is("SegmentList")) {
                self.segment_list(list, &base)?;
            }
            representation.remove(&["BaseURL", "SegmentTemplate"]);
        } else if let Some(template) = template {
            let id = representation.attr("id")?.ok_or_else(|| malformed("a Representation without an id"))?;
            let bandwidth = representation.attr("bandwidth")?;
            let list = self.expand(&template, &base, &id, bandwidth.as_deref(), period_duration)?;
            representation.remove(&["BaseURL"]);
            if let Err(list) = representation.replace(&["SegmentTemplate"], list) {
                representation.children.push(Node::Element(list));
            }
        } else {
            // One file: SegmentBase (index and init by byte range) or nothing.
            for segment_base in representation.elements_mut().filter(|child| child.is("SegmentBase")) {
                self.source_urls(segment_base, &base)?;
            }
            let mut base_url = Element::new("BaseURL");
            base_url.set_text(&self.file(&base)?);
            if let Err(base_url) = representation.replace(&["BaseURL"], base_url) {
                // Where the schema puts it: before the segment information.
                let at = representation
                    .children
                    .iter()
                    .position(|node| {
                        matches!(node, Node::Element(child) if child.is("SegmentBase") || child.is("SubRepresentation"))
                    })
                    .unwrap_or(representation.children.len());
                representation.children.insert(at, Node::Element(base_url));
            }
        }
        Ok(())
    }

    /// `Initialization` / `RepresentationIndex` / `BitstreamSwitching` `@sourceURL`s.
    fn source_urls(&mut self, element: &mut Element, base: &str) -> Result<(), ManifestError> {
        for child in element.elements_mut() {
            if child.is("Initialization") || child.is("RepresentationIndex") || child.is("BitstreamSwitching") {
                if let Some(source) = child.attr("sourceURL")? {
                    let url = self.object(base, &source)?;
                    child.set_attr("sourceURL", &url);
                }
            }
        }
        Ok(())
    }

    fn segment_list(&mut self, list: &mut Element, base: &str) -> Result<(), ManifestError> {
        if list.has_attr("xlink:href") {
            return Err(malformed("remote elements (xlink:href) are not supported"));
        }
        self.source_urls(list, base)?;
        for segment in list.elements_mut().filter(|child| child.is("SegmentURL")) {
            // Without @media the segment is a byte range of the base file itself.
            let media = match segment.attr("media")? {
                Some(media) => self.object(base, &media)?,
                None => self.file(base)?,
            };
            segment.set_attr("media", &media);
            if let Some(index) = segment.attr("index")? {
                let index = self.object(base, &index)?;
                segment.set_attr("index", &index);
            }
        }
        Ok(())
    }

    /// The Representation's `SegmentList`: every segment the template names, signed.
    fn expand(
        &mut self,
        template: &Template,
        base: &str,
        id: &str,
        bandwidth: Option<&str>,
        period_duration: Option<f64>,
    ) -> Result<Element, ManifestError> {
        let media = template.media.as_deref().ok_or_else(|| malformed("a SegmentTemplate without @media"))?;
        let timescale = template.timescale.unwrap_or(1);
        if timescale == 0 {
            return Err(malformed("a SegmentTemplate with @timescale 0"));
        }
        let segments = template.segments(timescale, period_duration)?;
        let fields = Fields { id, bandwidth };

        let mut list = Element::new("SegmentList");
        list.set_attr("timescale", &timescale.to_string());
        let total: u128 = segments.iter().map(|segment| u128::from(segment.duration)).sum();
        let mean = (total + segments.len() as u128 / 2) / (segments.len() as u128).max(1);
        list.set_attr("duration", &mean.to_string());
        if let Some(offset) = template.presentation_time_offset.filter(|offset| *offset > 0) {
            list.set_attr("presentationTimeOffset", &offset.to_string());
        }
        if let Some(initialization) = template.initialization.as_deref() {
            let url = self.object(base, &fields.substitute(initialization, None)?)?;
            let mut element = Element::new("Initialization");
            element.set_attr("sourceURL", &url);
            list.children.push(Node::Element(element));
        }
        for segment in &segments {
            let mut element = Element::new("SegmentURL");
            let url = self.object(base, &fields.substitute(media, Some(segment))?)?;
            element.set_attr("media", &url);
            if let Some(index) = template.index.as_deref() {
                let url = self.object(base, &fields.substitute(index, Some(segment))?)?;
                element.set_attr("index", &url);
            }
            list.children.push(Node::Element(element));
        }
        Ok(list)
    }
}

/// `base` with the first `BaseURL` child of `element` applied.
fn joined(base: &str, element: &Element) -> Result<String, ManifestError> {
    match element.child("BaseURL") {
        None => Ok(base.to_owned()),
        Some(url) => merge(base, &url.text()?),
    }
}

/// `reference` resolved against `base` (both relative to the MPD's own
/// location): `base` up to its last `/`, then `reference`. Absolute
/// references are outside the movie by definition.
fn merge(base: &str, reference: &str) -> Result<String, ManifestError> {
    if reference.starts_with('/') || reference.contains("://") || reference.starts_with("data:") {
        return Err(ManifestError::OutsideMovie(reference.chars().take(100).collect()));
    }
    let base = base.split(['?', '#']).next().unwrap_or_default();
    let directory = &base[..base.rfind('/').map_or(0, |slash| slash + 1)];
    Ok(format!("{directory}{reference}"))
}

/// Start and length of each Period, in seconds: `@start` defaults to the
/// end of the previous Period; the length comes from `@duration`, the next
/// Period's start, or the presentation's end.
fn period_durations(mpd: &Element, presentation: Option<f64>) -> Result<Vec<Option<f64>>, ManifestError> {
    let mut timings = Vec::new();
    let mut previous_end = Some(0.0);
    for period in mpd.elements().filter(|element| element.is("Period")) {
        let start = period.attr("start")?.map(|text| parse_duration(&text)).transpose()?.or(previous_end);
        let duration = period.attr("duration")?.map(|text| parse_duration(&text)).transpose()?;
        previous_end = start.zip(duration).map(|(start, duration)| start + duration);
        timings.push((start, duration));
    }
    let mut durations = Vec::with_capacity(timings.len());
    for (i, (start, duration)) in timings.iter().enumerate() {
        let end = match timings.get(i + 1) {
            Some((next_start, _)) => *next_start,
            None => presentation,
        };
        durations.push(duration.or_else(|| Some(end? - (*start)?)).filter(|d| *d >= 0.0));
    }
    Ok(durations)
}

/// An `xs:duration` as used in MPDs (`PT1H2M3.5S`, `P1DT2H`), in seconds.
/// Years and months (of no fixed length) are refused.
fn parse_duration(text: &str) -> Result<f64, ManifestError> {
    let invalid = || malformed(format_args!("an invalid duration {:?}", text.chars().take(40).collect::<String>()));
    let rest = text.trim().strip_prefix('P').ok_or_else(invalid)?;
    let (date, time) = match rest.split_once('T') {
        Some((date, time)) if !time.is_empty() => (date, Some(time)),
        Some(_) => return Err(invalid()),
        None => (rest, None),
    };
    if date.is_empty() && time.is_none() {
        return Err(invalid());
    }
    let mut seconds = 0.0;
    for (part, units) in
        [(date, &[('D', 86_400.0)][..]), (time.unwrap_or_default(), &[('H', 3_600.0), ('M', 60.0), ('S', 1.0)])]
    {
        let mut rest = part;
        let mut allowed = units;
        while !rest.is_empty() {
            let split = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(invalid)?;
            let (number, tail) = rest.split_at(split);
            let unit = tail.chars().next().ok_or_else(invalid)?;
            let position = allowed.iter().position(|(name, _)| *name == unit).ok_or_else(invalid)?;
            let value: f64 = number.parse().map_err(|_| invalid())?;
            seconds += value * allowed[position].1;
            allowed = &allowed[position + 1..];
            rest = &tail[unit.len_utf8()..];
        }
    }
    if seconds.is_finite() {
        Ok(seconds)
    } else {
        Err(invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::template::{Entry, Segment};
    use super::*;

    fn key(text: &str) -> ObjectKey {
        ObjectKey::try_from(text).unwrap()
    }

    fn fake(_: UriTarget, key: &ObjectKey) -> Result<String, ManifestError> {
        Ok(format!("https://store/{}?sig=s&x=1", key.as_str()))
    }

    fn rewrite(mpd: &str) -> Result<String, ManifestError> {
        rewrite_dash(mpd.as_bytes(), &key("movies/m1/index.mpd"), &key("movies/m1"), &mut fake)
            .map(|bytes| String::from_utf8(bytes).unwrap())
    }

    #[test]
    fn durations_parse_as_mpds_write_them() {
        for (text, seconds) in
            [("PT6.0S", 6.0), ("PT1H2M3.5S", 3723.5), ("P1DT1S", 86_401.0), ("PT0S", 0.0), ("P2D", 172_800.0)]
        {
            assert_eq!(parse_duration(text).unwrap(), seconds, "{text}");
        }
        for bad in ["", "P", "PT", "6S", "PT6", "P1Y", "PT1S2H", "PT-1S", "PT1.2.3S", "PTxS", "P1M", "PT1e400S"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn template_identifiers_are_substituted_with_their_formats() {
        let fields = Fields { id: "v1", bandwidth: Some("60000") };
        let segment = Segment { number: 7, time: 24576, duration: 1 };
        assert_eq!(
            fields.substitute("$RepresentationID$/$Number%03d$-$Time$-$Bandwidth%08d$$$.m4s", Some(&segment)).unwrap(),
            "v1/007-24576-00060000$.m4s"
        );
        assert_eq!(fields.substitute("init-$RepresentationID$.mp4", None).unwrap(), "init-v1.mp4");
        for bad in ["$Number$", "a$Number", "$SubNumber$", "$Nope$", "$RepresentationID%02d$", "$Time%x$"] {
            assert!(fields.substitute(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_timeline_expands_with_repeats_explicit_times_and_open_ended_runs() {
        let template = Template {
            start_number: Some(5),
            timeline: Some(vec![
                Entry { t: Some(100), n: None, d: 10, r: 1 },
                Entry { t: None, n: None, d: 20, r: 0 },
                Entry { t: Some(200), n: None, d: 50, r: -1 },
            ]),
            ..Template::default()
        };
        let segments = template.segments(10, Some(30.0)).unwrap();
        let numbers: Vec<(u64, u64)> = segments.iter().map(|s| (s.number, s.time)).collect();
        assert_eq!(numbers, [(5, 100), (6, 110), (7, 120), (8, 200), (9, 250)]);
        let by_duration = Template { duration: Some(4), ..Template::default() };
        assert_eq!(by_duration.segments(2, Some(6.0)).unwrap().len(), 3);
        assert_eq!(by_duration.segments(2, Some(6.5)).unwrap().len(), 4, "a short last segment counts");
        assert!(by_duration.segments(2, None).is_err(), "no period length");
        let huge =
            Template { timeline: Some(vec![Entry { t: None, n: None, d: 1, r: i64::MAX }]), ..Template::default() };
        assert!(huge.segments(1, None).is_err());
    }

    #[test]
    fn single_file_representations_get_one_signed_base_url() {
        let out = rewrite(
            "<MPD type=\"static\" mediaPresentationDuration=\"PT10S\"><BaseURL>media/</BaseURL><Period>\
             <AdaptationSet><Representation id=\"a\" bandwidth=\"1\"><BaseURL>a.mp4</BaseURL>\
             <SegmentBase indexRange=\"0-99\"><Initialization range=\"0-50\"/></SegmentBase></Representation>\
             </AdaptationSet></Period></MPD>",
        )
        .unwrap();
        assert_eq!(
            out,
            "<MPD type=\"static\" mediaPresentationDuration=\"PT10S\"><Period><AdaptationSet><Representation id=\"a\" \
             bandwidth=\"1\"><BaseURL>https://store/movies/m1/media/a.mp4?sig=s&amp;x=1</BaseURL><SegmentBase \
             indexRange=\"0-99\"><Initialization range=\"0-50\"/></SegmentBase></Representation></AdaptationSet>\
             </Period></MPD>"
        );
    }

    #[test]
    fn segment_lists_are_signed_in_place() {
        let out = rewrite(
            "<MPD><Period><AdaptationSet><BaseURL>v/</BaseURL><Representation id=\"a\">\
             <BaseURL>all.mp4</BaseURL><SegmentList duration=\"2\"><Initialization sourceURL=\"init.mp4\"/>\
             <SegmentURL media=\"s1.m4s\" index=\"s1.idx\"/><SegmentURL mediaRange=\"10-20\"/></SegmentList>\
             </Representation></AdaptationSet></Period></MPD>",
        )
        .unwrap();
        assert!(
            out.contains("<Initialization sourceURL=\"https://store/movies/m1/v/init.mp4?sig=s&amp;x=1\"/>"),
            "{out}"
        );
        assert!(out.contains("media=\"https://store/movies/m1/v/s1.m4s?sig=s&amp;x=1\""), "{out}");
        assert!(out.contains("index=\"https://store/movies/m1/v/s1.idx?sig=s&amp;x=1\""), "{out}");
        assert!(
            out.contains(
                "<SegmentURL mediaRange=\"10-20\" media=\"https://store/movies/m1/v/all.mp4?sig=s&amp;x=1\"/>"
            ),
            "{out}"
        );
        assert!(!out.contains("<BaseURL>"), "{out}");
    }

    #[test]
    fn templates_inherit_across_levels_and_expand_per_representation() {
        let out = rewrite(
            "<MPD mediaPresentationDuration=\"PT4S\"><Period><AdaptationSet>\
             <SegmentTemplate timescale=\"1000\" duration=\"2000\" media=\"$RepresentationID$/$Number$.m4s\" \
             initialization=\"$RepresentationID$/init.mp4\" startNumber=\"0\"/>\
             <Representation id=\"lo\" bandwidth=\"1\"/><Representation id=\"hi\" bandwidth=\"2\">\
             <SegmentTemplate media=\"hi/$Time$.m4s\"/></Representation></AdaptationSet></Period></MPD>",
        )
        .unwrap();
        for url in ["lo/init.mp4", "lo/0.m4s", "lo/1.m4s", "hi/init.mp4", "hi/0.m4s", "hi/2000.m4s"] {
            assert!(out.contains(&format!("https://store/movies/m1/{url}?")), "{url}: {out}");
        }
        assert!(!out.contains("SegmentTemplate"), "{out}");
        assert_eq!(out.matches("<SegmentList timescale=\"1000\" duration=\"2000\">").count(), 2, "{out}");
    }

    #[test]
    fn what_cannot_be_signed_is_refused() {
        for bad in [
            "<MPD type=\"dynamic\"><Period/></MPD>",
            "<NotMPD/>",
            "<MPD><Period xlink:href=\"https://elsewhere/p.xml\"/></MPD>",
            "<MPD><BaseURL>https://cdn.example/</BaseURL><Period><AdaptationSet><Representation id=\"a\"><BaseURL>a.mp4</BaseURL></Representation></AdaptationSet></Period></MPD>",
            "<MPD><Period><AdaptationSet><Representation id=\"a\"><BaseURL>../../m2/a.mp4</BaseURL></Representation></AdaptationSet></Period></MPD>",
            "<MPD><Period><AdaptationSet><Representation id=\"a\"/></AdaptationSet></Period></MPD>",
            "<MPD><Period><AdaptationSet><Representation id=\"a\"><SegmentTemplate media=\"$Number$.m4s\" duration=\"2\"/></Representation></AdaptationSet></Period></MPD>",
            "<MPD><Period duration=\"PT1000000S\"><AdaptationSet><Representation id=\"a\"><SegmentTemplate media=\"$Number$.m4s\" duration=\"1\"/></Representation></AdaptationSet></Period></MPD>",
        ] {
            assert!(rewrite(bad).is_err(), "{bad}");
        }
    }
}
