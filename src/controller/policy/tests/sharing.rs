//! The decisions of `decide` when several resources share one asset.

use super::*;

#[test]
fn access_none_is_kept_on_while_another_resource_needs_the_url() {
    let mut spec = spec();
    spec.access = Access::None;
    let others = vec!["media/b".to_string()];
    let status = MasterExportStatus::default();
    let asset = asset(Some((MasterStatus::Ready, Some(URL_A))));
    let obs = Observation {
        now: t(0),
        generation: Some(1),
        spread_seed: 0,
        spec: &spec,
        status: &status,
        asset: &asset,
        slow_poll: None,
        others_wanting: &others,
        known_grant: None,
        first_look: None,
    };
    let d = decide(&obs, &Settings::default());
    assert_eq!(d.call, None, "no revoke while media/b needs access");
    assert_eq!(d.status.phase, Some(Phase::Revoked));
    assert_eq!(
        d.status.master.unwrap().url,
        None,
        "this one publishes no URL"
    );
    assert_eq!(d.summary.reason, ACCESS_KEPT_FOR_OTHERS);
    assert!(
        d.summary.message.contains("media/b"),
        "{}",
        d.summary.message
    );
    // Once nobody else needs it, access goes.
    let alone = Observation {
        others_wanting: &[],
        ..obs
    };
    let d = decide(&alone, &Settings::default());
    assert_eq!(d.call, Some((Operation::Revoke, MasterAccess::None)));
}

#[test]
fn a_url_another_resource_asked_for_is_adopted_with_its_window() {
    let spec = spec();
    let status = MasterExportStatus::default();
    let asset = asset(Some((MasterStatus::Ready, Some(URL_A))));
    let grant = Grant::new(&format!("{URL_A}&download=other.mp4"), t(0));
    let obs = Observation {
        now: t(50),
        generation: Some(1),
        spread_seed: 0,
        spec: &spec,
        status: &status,
        asset: &asset,
        slow_poll: None,
        others_wanting: &[],
        known_grant: Some(&grant),
        first_look: None,
    };
    let d = decide(&obs, &Settings::default());
    assert_eq!(d.call, None, "no renewal of a URL whose window is known");
    let master = d.status.master.unwrap();
    assert_eq!(master.url.as_deref(), Some(URL_A));
    assert_eq!(master.expires_at, Some(time(t(24 * 3600))));
    assert_eq!(master.refresh_at, Some(time(t(22 * 3600))));
    // A grant of another URL says nothing about this one.
    let stale = Grant::new(URL_B, t(0));
    let d = decide(
        &Observation {
            known_grant: Some(&stale),
            ..obs
        },
        &Settings::default(),
    );
    assert_eq!(d.status.master.unwrap().expires_at, None);
}

#[test]
fn a_url_whose_window_is_over_when_first_seen_is_unknown_and_renewed_once() {
    // Requested at t(0); the operator was down for 25 h; Mux shows the URL now.
    let requested = with_pending(Operation::Request, t(0));
    let ready = asset(Some((MasterStatus::Ready, Some(URL_A))));
    let seen = decide_at(t(25 * 3600), &spec(), &requested, &ready);
    let master = seen.status.master.clone().unwrap();
    assert_eq!(master.url.as_deref(), Some(URL_A));
    assert_eq!(master.expires_at, None, "not published as expired");
    assert_eq!(master.requested_at, None);
    assert_eq!(seen.requeue_after, Some(Duration::from_millis(100)));
    let mut withdrawn = seen.status.clone();
    assert!(
        !drop_expired_url(&mut withdrawn, t(25 * 3600)),
        "nothing to withdraw"
    );
    // Next: one renewal, not a publish-and-withdraw loop.
    let next = decide_at(t(25 * 3600), &spec(), &seen.status, &ready);
    assert_eq!(next.call, Some((Operation::Renew, MasterAccess::Temporary)));
}
