//! The suites of the playback stores: progress and sessions.

use std::time::Duration;

use time::OffsetDateTime;

use super::{fresh_media, fresh_user};
use crate::domain::{ManifestKind, PositionSeconds, SessionId, StreamSession, WatchProgress};
use crate::ports::{CloseOutcome, ProgressStore, RecordOutcome, SessionError, SessionStore};

/// Everything a [`ProgressStore`] promises.
pub async fn progress_store<S: ProgressStore + ?Sized>(store: &S) {
    let alice = fresh_user();
    let movie = fresh_media();
    let at = OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
    let session = SessionId::random();
    let progress = |position: f64, sequence: u64, session: Option<SessionId>| WatchProgress {
        user: alice.clone(),
        media: movie.clone(),
        position: PositionSeconds::new(position).unwrap(),
        last_watched_at: at + Duration::from_secs(sequence),
        watched: false,
        session,
        sequence,
    };

    assert_eq!(store.get(&alice, &movie).await.unwrap(), None);
    assert_eq!(store.record(progress(10.0, 1, Some(session))).await.unwrap(), RecordOutcome::Applied);
    assert_eq!(store.record(progress(30.0, 3, Some(session))).await.unwrap(), RecordOutcome::Applied);
    assert_eq!(store.record(progress(20.0, 2, Some(session))).await.unwrap(), RecordOutcome::Stale, "late update");
    assert_eq!(
        store.record(progress(25.0, 3, Some(session))).await.unwrap(),
        RecordOutcome::Stale,
        "replayed sequence"
    );
    let stored = store.get(&alice, &movie).await.unwrap().unwrap();
    assert_eq!(stored.position.get(), 30.0);
    assert_eq!(stored.sequence, 3);
    assert_eq!(stored.session, Some(session));

    let next = SessionId::random();
    assert_eq!(
        store.record(progress(5.0, 1, Some(next))).await.unwrap(),
        RecordOutcome::Applied,
        "a new session starts over"
    );
    assert_eq!(store.get(&alice, &movie).await.unwrap().unwrap().position.get(), 5.0);
    assert_eq!(store.get(&fresh_user(), &movie).await.unwrap(), None, "progress is per user");

    // A durable record (a stop) obeys the same rule and is read back at once.
    assert_eq!(store.record_durably(progress(7.0, 2, Some(next))).await.unwrap(), RecordOutcome::Applied);
    assert_eq!(store.record_durably(progress(6.0, 2, Some(next))).await.unwrap(), RecordOutcome::Stale);
    assert_eq!(store.record(progress(6.0, 1, Some(next))).await.unwrap(), RecordOutcome::Stale);
    assert_eq!(store.get(&alice, &movie).await.unwrap().unwrap().position.get(), 7.0);
}

/// Everything a [`SessionStore`] promises.
pub async fn session_store<S: SessionStore + ?Sized>(store: &S) {
    let alice = fresh_user();
    let start = OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
    let session = |id: SessionId, started: OffsetDateTime| StreamSession {
        id,
        user: alice.clone(),
        media: fresh_media(),
        manifest: ManifestKind::Hls,
        started_at: started,
        ended_at: None,
        duration_seconds: None,
        user_agent: Some("contract/1.0".into()),
        client_ip: Some("127.0.0.1".parse().unwrap()),
        last_heartbeat_at: started,
    };
    let first = session(SessionId::random(), start);
    let second = session(SessionId::random(), start + Duration::from_secs(10));

    store.open(first.clone()).await.unwrap();
    assert_eq!(store.open(first.clone()).await, Err(SessionError::Duplicate));
    store.open(second.clone()).await.unwrap();
    assert_eq!(store.get(&first.id).await.unwrap(), Some(first.clone()));
    assert_eq!(store.get(&SessionId::random()).await.unwrap(), None);
    let both = store.get_many(&[second.id, SessionId::random(), first.id]).await.unwrap();
    assert_eq!(both, vec![Some(second.clone()), None, Some(first.clone())], "in the order asked");

    let open = store.open_sessions(&alice, start).await.unwrap();
    assert_eq!(open.iter().map(|s| s.id).collect::<Vec<_>>(), vec![first.id, second.id], "oldest first");
    store.touch(&second.id, start + Duration::from_secs(100)).await.unwrap();
    let alive = store.open_sessions(&alice, start + Duration::from_secs(50)).await.unwrap();
    assert_eq!(alive.iter().map(|s| s.id).collect::<Vec<_>>(), vec![second.id], "idle sessions do not count");
    let heartbeat = |id| async move { store.get(&id).await.unwrap().unwrap().last_heartbeat_at };
    store
        .touch_many(vec![(second.id, start + Duration::from_secs(80)), (first.id, start + Duration::from_secs(60))])
        .await
        .unwrap();
    assert_eq!(heartbeat(second.id).await, start + Duration::from_secs(100), "a heartbeat never goes back");
    assert_eq!(heartbeat(first.id).await, start + Duration::from_secs(60), "a batch touches every session in it");
    store.touch_many(Vec::new()).await.unwrap();

    let end = start + Duration::from_secs(90);
    let closed = match store.close(&first.id, end).await.unwrap() {
        CloseOutcome::Closed(closed) => closed,
        other => panic!("closing an open session closes it, got {other:?}"),
    };
    assert_eq!(closed.ended_at, Some(end));
    assert_eq!(closed.duration_seconds, Some(90.0));
    match store.close(&first.id, end + Duration::from_secs(5)).await.unwrap() {
        CloseOutcome::AlreadyClosed(again) => {
            assert_eq!(again, closed, "a second close changes nothing")
        }
        other => panic!("closing twice is idempotent, got {other:?}"),
    }
    assert_eq!(store.close(&SessionId::random(), end).await.unwrap(), CloseOutcome::NotFound);
    assert!(store.open_sessions(&alice, start).await.unwrap().iter().all(|s| s.id != first.id));
    store.touch_many(vec![(first.id, end + Duration::from_secs(60))]).await.unwrap();
    assert_eq!(heartbeat(first.id).await, closed.last_heartbeat_at, "a closed session is not touched");

    // Sessions nobody stopped are closed once idle, at their last heartbeat,
    // in batches, each by one call only.
    let idle_before = start + Duration::from_secs(1_000);
    let idle: Vec<StreamSession> =
        (0..3).map(|i| session(SessionId::random(), start + Duration::from_secs(200 + i))).collect();
    for s in &idle {
        store.open(s.clone()).await.unwrap();
    }
    store.touch(&idle[0].id, start + Duration::from_secs(400)).await.unwrap();
    let lively = session(SessionId::random(), start + Duration::from_secs(300));
    store.open(lively.clone()).await.unwrap();
    store.touch(&lively.id, idle_before + Duration::from_secs(10)).await.unwrap();
    let mut swept = Vec::new();
    loop {
        let (batch, _) = store.close_idle(idle_before, 2).await.unwrap();
        assert!(batch.len() <= 2, "at most as many as asked");
        let last = batch.len() < 2;
        swept.extend(batch.into_iter().filter(|s| s.user == alice));
        if last {
            break;
        }
    }
    let mut swept_ids: Vec<SessionId> = swept.iter().map(|s| s.id).collect();
    swept_ids.sort_by_key(|id| id.as_uuid());
    let mut expected: Vec<SessionId> = idle.iter().map(|s| s.id).chain([second.id]).collect();
    expected.sort_by_key(|id| id.as_uuid());
    assert_eq!(swept_ids, expected, "every idle open session once; the stopped and the lively ones not");
    for s in &swept {
        assert_eq!(s.ended_at, Some(s.last_heartbeat_at), "ended at its last sign of life");
        let lasted = (s.last_heartbeat_at - s.started_at).as_seconds_f64();
        assert_eq!(s.duration_seconds, Some(lasted));
        assert_eq!(store.get(&s.id).await.unwrap().as_ref(), Some(s), "stored as returned");
    }
    assert_eq!(swept.iter().find(|s| s.id == idle[0].id).map(|s| s.duration_seconds), Some(Some(200.0)));
    let (again, _) = store.close_idle(idle_before, 100).await.unwrap();
    assert!(again.iter().all(|s| s.user != alice), "nothing is closed twice");
    let open = store.open_sessions(&alice, OffsetDateTime::UNIX_EPOCH).await.unwrap();
    assert_eq!(open.iter().map(|s| s.id).collect::<Vec<_>>(), vec![lively.id]);
}
