//! Demo media for the embedded mode: synthesized WAV tones owned by a demo
//! user, one of them left in `Processing`, and a token for that user.

use std::f64::consts::TAU;

use crate::catalog::Catalog;
use crate::storage::Storage;
use streaming_core::domain::{
    InvalidId, InvalidObjectKey, Media, MediaId, MediaKind, MediaStatus, ObjectKey, Plan, PlanFeatures, Subscription,
    SubscriptionStatus, UserId, Visibility,
};
use streaming_core::ports::{CatalogError, ObjectStoreError};

/// The demo user's id.
pub const DEMO_USER: &str = "01JG0DEM0VSER00000000000A1";

const SAMPLE_RATE: u32 = 22_050;

/// A demo track.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoTrack {
    /// Its id.
    pub id: MediaId,
    /// What it is.
    pub title: &'static str,
    /// Its status.
    pub status: MediaStatus,
}

/// The demo user and tracks, and a token to try them with.
#[derive(Debug, Clone)]
pub struct DemoInfo {
    /// The demo user.
    pub user: UserId,
    /// A bearer token for the demo user (printed at start).
    pub token: String,
    /// The demo tracks.
    pub tracks: Vec<DemoTrack>,
    /// The demo movie (HLS and DASH renditions; the demo user subscribes).
    pub movie: MediaId,
}

/// The demo movie's id.
pub const DEMO_MOVIE: &str = "5eed0000-0000-4000-8000-000000000001";

/// The demo trailer's id: the demo movie's files again, public, so that any
/// signed-in user may play it (no subscription, no stream limit).
pub const DEMO_TRAILER: &str = "5eed0000-0000-4000-8000-000000000002";

/// The demo movie's files: a 6-second test pattern with a tone, as HLS
/// (MPEG-TS segments) and DASH (fMP4 segments). See `demo/README.md` for how
/// they were made.
const MOVIE_FILES: &[(&str, &[u8])] = &[
    ("index.m3u8", include_bytes!("../demo/movie/index.m3u8")),
    ("segment-000.ts", include_bytes!("../demo/movie/segment-000.ts")),
    ("segment-001.ts", include_bytes!("../demo/movie/segment-001.ts")),
    ("segment-002.ts", include_bytes!("../demo/movie/segment-002.ts")),
    ("index.mpd", include_bytes!("../demo/movie/index.mpd")),
    ("init-0.m4s", include_bytes!("../demo/movie/init-0.m4s")),
    ("init-1.m4s", include_bytes!("../demo/movie/init-1.m4s")),
    ("chunk-0-001.m4s", include_bytes!("../demo/movie/chunk-0-001.m4s")),
    ("chunk-0-002.m4s", include_bytes!("../demo/movie/chunk-0-002.m4s")),
    ("chunk-0-003.m4s", include_bytes!("../demo/movie/chunk-0-003.m4s")),
    ("chunk-1-001.m4s", include_bytes!("../demo/movie/chunk-1-001.m4s")),
    ("chunk-1-002.m4s", include_bytes!("../demo/movie/chunk-1-002.m4s")),
    ("chunk-1-003.m4s", include_bytes!("../demo/movie/chunk-1-003.m4s")),
];

/// Why the demo media could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DemoError {
    /// A built-in id or key is not valid (a bug).
    #[error("a built-in demo id: {0}")]
    Id(#[from] InvalidId),
    /// A built-in object key is not valid (a bug).
    #[error("a built-in demo key: {0}")]
    Key(#[from] InvalidObjectKey),
    /// An object could not be written.
    #[error("writing demo media: {0}")]
    Objects(#[from] ObjectStoreError),
    /// The catalog refused the media.
    #[error("registering demo media: {0}")]
    Catalog(#[from] CatalogError),
}

/// Writes the demo movie's files and registers them twice: as the
/// subscriber-only demo movie and as the public demo trailer.
///
/// # Errors
/// [`DemoError`] if the files cannot be written or the media registered.
pub async fn seed_movie(catalog: &Catalog, store: &Storage) -> Result<MediaId, DemoError> {
    let id = MediaId::parse_uuid(DEMO_MOVIE)?;
    let root = format!("movies/{DEMO_MOVIE}");
    for (name, bytes) in MOVIE_FILES {
        let key = ObjectKey::try_from(format!("{root}/{name}"))?;
        let content_type = streaming_localfs::content_type_of(name);
        store.put(&key, bytes, content_type).await?;
    }
    let movie = Media {
        id: id.clone(),
        kind: MediaKind::Movie,
        owner: None,
        status: MediaStatus::Ready,
        object_key: ObjectKey::try_from(root)?,
        content_type: "application/vnd.apple.mpegurl".into(),
        size_bytes: MOVIE_FILES.iter().map(|(_, b)| b.len() as u64).sum(),
        duration_seconds: Some(6.0),
        visibility: Visibility::Subscribers,
        required_features: PlanFeatures::default(),
    };
    let trailer = Media { id: MediaId::parse_uuid(DEMO_TRAILER)?, visibility: Visibility::Public, ..movie.clone() };
    catalog.upsert(movie).await?;
    catalog.upsert(trailer).await?;
    Ok(id)
}

/// The demo user's subscription: active, two devices, HD.
pub fn demo_subscription() -> Subscription {
    Subscription {
        status: SubscriptionStatus::Active,
        end_date: None,
        plan: Plan { max_devices: Some(2), supports_hd: true, supports_4k: false },
    }
}

struct Spec {
    id: &'static str,
    title: &'static str,
    frequency: f64,
    seconds: u32,
    status: MediaStatus,
}

const SPECS: [Spec; 3] = [
    Spec {
        id: "01JG0DEM0TRACK000000000001",
        title: "A4 tone, 440 Hz",
        frequency: 440.0,
        seconds: 5,
        status: MediaStatus::Ready,
    },
    Spec {
        id: "01JG0DEM0TRACK000000000002",
        title: "E5 tone, 659 Hz",
        frequency: 659.25,
        seconds: 5,
        status: MediaStatus::Ready,
    },
    Spec {
        id: "01JG0DEM0TRACK000000000003",
        title: "Still processing",
        frequency: 330.0,
        seconds: 1,
        status: MediaStatus::Processing,
    },
];

/// Writes the demo objects (if missing) and registers the demo media.
///
/// # Errors
/// [`DemoError`] if the objects cannot be written or the media registered.
pub async fn seed(catalog: &Catalog, store: &Storage) -> Result<(UserId, Vec<DemoTrack>), DemoError> {
    let user = UserId::try_from(DEMO_USER)?;
    let mut tracks = Vec::new();
    for spec in &SPECS {
        let id = MediaId::parse_ulid(spec.id)?;
        let key = ObjectKey::try_from(format!("tracks/{}.wav", spec.id))?;
        let wav = tone_wav(spec.frequency, spec.seconds);
        if store.port().head(&key).await.is_err() {
            store.put(&key, &wav, "audio/wav").await?;
        }
        catalog
            .upsert(Media {
                id: id.clone(),
                kind: MediaKind::Track,
                owner: Some(user.clone()),
                status: spec.status,
                object_key: key,
                content_type: "audio/wav".into(),
                size_bytes: wav.len() as u64,
                duration_seconds: Some(f64::from(spec.seconds)),
                visibility: Visibility::Private,
                required_features: PlanFeatures::default(),
            })
            .await?;
        tracks.push(DemoTrack { id, title: spec.title, status: spec.status });
    }
    Ok((user, tracks))
}

/// A mono 16-bit PCM WAV of a sine tone with short fades (no clicks).
pub fn tone_wav(frequency: f64, seconds: u32) -> Vec<u8> {
    let samples = SAMPLE_RATE * seconds;
    let data_len = samples * 2;
    let mut wav = Vec::with_capacity(44 + data_len as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&SAMPLE_RATE.to_le_bytes());
    wav.extend_from_slice(&(SAMPLE_RATE * 2).to_le_bytes()); // byte rate
    wav.extend_from_slice(&2u16.to_le_bytes()); // block align
    wav.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    let fade = f64::from(SAMPLE_RATE) * 0.02;
    for n in 0..samples {
        let t = f64::from(n) / f64::from(SAMPLE_RATE);
        let envelope = (f64::from(n) / fade).min(f64::from(samples - n) / fade).min(1.0);
        let sample = (TAU * frequency * t).sin() * envelope * 0.4 * f64::from(i16::MAX);
        wav.extend_from_slice(&(sample as i16).to_le_bytes());
    }
    wav
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_ids_are_valid() {
        assert!(UserId::try_from(DEMO_USER).is_ok());
        for spec in &SPECS {
            assert_eq!(MediaId::parse_ulid(spec.id).unwrap().as_str(), spec.id, "{} must be canonical", spec.id);
        }
    }

    #[test]
    fn the_demo_movie_is_complete_and_small() {
        assert!(MediaId::parse_uuid(DEMO_MOVIE).is_ok());
        let total: usize = MOVIE_FILES.iter().map(|(_, b)| b.len()).sum();
        assert!(total < 300 * 1024, "{total} bytes");
        let playlist = std::str::from_utf8(MOVIE_FILES[0].1).unwrap();
        for segment in playlist.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            assert!(MOVIE_FILES.iter().any(|(name, _)| *name == segment), "{segment} is listed but not shipped");
        }
    }

    #[test]
    fn tones_are_well_formed_wav() {
        let wav = tone_wav(440.0, 1);
        assert_eq!(&wav[0..4], b"RIFF");
        assert_eq!(&wav[8..12], b"WAVE");
        assert_eq!(wav.len(), 44 + 2 * SAMPLE_RATE as usize);
        assert_eq!(u32::from_le_bytes(wav[4..8].try_into().unwrap()) as usize, wav.len() - 8);
        // Not silence: some sample reaches a third of full scale.
        let loud = wav[44..].chunks(2).any(|s| i16::from_le_bytes([s[0], s[1]]).unsigned_abs() > 10_000);
        assert!(loud);
    }
}
