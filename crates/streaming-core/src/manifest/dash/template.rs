//! `SegmentTemplate` expansion: what a Representation inherits from the
//! levels above, its timeline or fixed duration unrolled into segments,
//! and the `$Identifier$` substitution of each segment's URL.

use super::MAX_SEGMENT_URLS;
use crate::manifest::xml::{malformed, Element};
use crate::manifest::ManifestError;

pub(super) fn too_many_segments() -> ManifestError {
    malformed(format_args!("the MPD names more than {MAX_SEGMENT_URLS} segments"))
}

/// A `SegmentTemplate` with what it inherits from the levels above.
#[derive(Debug, Clone, Default)]
pub(super) struct Template {
    pub(super) media: Option<String>,
    pub(super) initialization: Option<String>,
    pub(super) index: Option<String>,
    pub(super) timescale: Option<u64>,
    pub(super) duration: Option<u64>,
    pub(super) start_number: Option<u64>,
    pub(super) presentation_time_offset: Option<u64>,
    pub(super) timeline: Option<Vec<Entry>>,
}

/// One `S` of a `SegmentTimeline`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub(super) t: Option<u64>,
    pub(super) n: Option<u64>,
    pub(super) d: u64,
    pub(super) r: i64,
}

/// One segment a template names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Segment {
    pub(super) number: u64,
    pub(super) time: u64,
    pub(super) duration: u64,
}

impl Template {
    /// `inherited` overridden by what `element` sets.
    pub(super) fn inherit(
        inherited: Option<&Template>,
        element: Option<&Element>,
    ) -> Result<Option<Template>, ManifestError> {
        let Some(element) = element else { return Ok(inherited.cloned()) };
        if element.has_attr("xlink:href") {
            return Err(malformed("remote elements (xlink:href) are not supported"));
        }
        let mut template = inherited.cloned().unwrap_or_default();
        let number = |name: &str| -> Result<Option<u64>, ManifestError> {
            element
                .attr(name)?
                .map(|text| text.trim().parse::<u64>().map_err(|_| malformed(format_args!("@{name} is not a count"))))
                .transpose()
        };
        template.timescale = number("timescale")?.or(template.timescale);
        template.duration = number("duration")?.or(template.duration);
        template.start_number = number("startNumber")?.or(template.start_number);
        template.presentation_time_offset = number("presentationTimeOffset")?.or(template.presentation_time_offset);
        template.media = element.attr("media")?.or(template.media);
        template.index = element.attr("index")?.or(template.index);
        let child_initialization = element.child("Initialization").map(|child| child.attr("sourceURL")).transpose()?;
        template.initialization =
            element.attr("initialization")?.or(child_initialization.flatten()).or(template.initialization);
        if let Some(timeline) = element.child("SegmentTimeline") {
            template.timeline = Some(timeline_entries(timeline)?);
        }
        Ok(Some(template))
    }

    /// Every segment, in order.
    pub(super) fn segments(&self, timescale: u64, period_duration: Option<f64>) -> Result<Vec<Segment>, ManifestError> {
        let start_number = self.start_number.unwrap_or(1);
        let offset = self.presentation_time_offset.unwrap_or(0);
        // The period's end on the media timeline, when the MPD says how long the period is.
        let period_end = period_duration.map(|seconds| offset as f64 + seconds * timescale as f64);
        let overflow = || malformed("segment times overflow");
        let mut segments = Vec::new();
        if let Some(timeline) = &self.timeline {
            let mut time = 0u64;
            let mut number = start_number;
            for (i, entry) in timeline.iter().enumerate() {
                time = entry.t.unwrap_or(time);
                number = entry.n.unwrap_or(number);
                let count = match entry.r {
                    r if r >= 0 => r as u64 + 1,
                    -1 => {
                        let end = match timeline.get(i + 1).and_then(|next| next.t) {
                            Some(next) => next as f64,
                            None => period_end.ok_or_else(|| malformed("@r=\"-1\" without a known period end"))?,
                        };
                        ((end - time as f64) / entry.d as f64 - 1e-9).ceil().max(0.0) as u64
                    }
                    _ => return Err(malformed("a SegmentTimeline @r below -1")),
                };
                if count > (MAX_SEGMENT_URLS - segments.len().min(MAX_SEGMENT_URLS)) as u64 {
                    return Err(too_many_segments());
                }
                for _ in 0..count {
                    segments.push(Segment { number, time, duration: entry.d });
                    time = time.checked_add(entry.d).ok_or_else(overflow)?;
                    number = number.checked_add(1).ok_or_else(overflow)?;
                }
            }
        } else {
            let duration = self
                .duration
                .filter(|d| *d > 0)
                .ok_or_else(|| malformed("a SegmentTemplate needs a SegmentTimeline or a non-zero @duration"))?;
            let seconds = period_duration
                .ok_or_else(|| malformed("a SegmentTemplate @duration without a known period length"))?;
            let count = (seconds * timescale as f64 / duration as f64 - 1e-9).ceil();
            if !(0.0..=MAX_SEGMENT_URLS as f64).contains(&count) {
                return Err(too_many_segments());
            }
            for i in 0..count as u64 {
                let number = start_number.checked_add(i).ok_or_else(overflow)?;
                let time = i.checked_mul(duration).and_then(|t| t.checked_add(offset)).ok_or_else(overflow)?;
                segments.push(Segment { number, time, duration });
            }
        }
        if segments.is_empty() {
            return Err(malformed("a SegmentTemplate that names no segments"));
        }
        Ok(segments)
    }
}

pub(super) fn timeline_entries(timeline: &Element) -> Result<Vec<Entry>, ManifestError> {
    let mut entries = Vec::new();
    for s in timeline.elements().filter(|element| element.is("S")) {
        let count = |name: &str| -> Result<Option<u64>, ManifestError> {
            s.attr(name)?
                .map(|text| text.trim().parse::<u64>().map_err(|_| malformed(format_args!("S@{name} is not a count"))))
                .transpose()
        };
        let d = count("d")?.filter(|d| *d > 0).ok_or_else(|| malformed("an S without a positive @d"))?;
        let r = s
            .attr("r")?
            .map(|text| text.trim().parse::<i64>().map_err(|_| malformed("S@r is not an integer")))
            .transpose()?
            .unwrap_or(0);
        entries.push(Entry { t: count("t")?, n: count("n")?, d, r });
    }
    Ok(entries)
}

/// What a template's identifiers are replaced with.
pub(super) struct Fields<'a> {
    pub(super) id: &'a str,
    pub(super) bandwidth: Option<&'a str>,
}

impl Fields<'_> {
    /// `template` with `$RepresentationID$`, `$Bandwidth$`, `$Number$`,
    /// `$Time$` (the last three with an optional `%0<width>d`) and `$$` replaced.
    pub(super) fn substitute(&self, template: &str, segment: Option<&Segment>) -> Result<String, ManifestError> {
        let mut out = String::with_capacity(template.len() + 16);
        let mut rest = template;
        while let Some(start) = rest.find('$') {
            out.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            let end = after.find('$').ok_or_else(|| malformed("an unterminated $ in a SegmentTemplate"))?;
            let tag = &after[..end];
            rest = &after[end + 1..];
            if tag.is_empty() {
                out.push('$');
                continue;
            }
            let (name, format) = match tag.split_once('%') {
                Some((name, format)) => (name, Some(format)),
                None => (tag, None),
            };
            let number = match name {
                "RepresentationID" if format.is_none() => {
                    out.push_str(self.id);
                    continue;
                }
                "Bandwidth" => self
                    .bandwidth
                    .and_then(|text| text.trim().parse::<u64>().ok())
                    .ok_or_else(|| malformed("$Bandwidth$ without a Representation @bandwidth"))?,
                "Number" => segment.map(|s| s.number).ok_or_else(|| malformed("$Number$ in an initialization URL"))?,
                "Time" => segment.map(|s| s.time).ok_or_else(|| malformed("$Time$ in an initialization URL"))?,
                _ => return Err(malformed(format_args!("an unsupported SegmentTemplate identifier ${}$", tag))),
            };
            let width = match format {
                None => 0,
                Some(format) => format
                    .strip_suffix('d')
                    .map(|width| width.trim_start_matches('0'))
                    .and_then(|width| if width.is_empty() { Some(0) } else { width.parse::<usize>().ok() })
                    .filter(|width| *width <= 32)
                    .ok_or_else(|| malformed(format_args!("an unsupported format in ${}$", tag)))?,
            };
            out.push_str(&format!("{number:0width$}"));
        }
        out.push_str(rest);
        Ok(out)
    }
}
