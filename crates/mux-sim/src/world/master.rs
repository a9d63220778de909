//! The master's lifecycle through the API (`PUT master-access`), and the file at its signed
//! URL: who may download it, and how long it is now.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::time::Instant;

use super::{Event, Grant, Refusal, SimAsset, SimMaster, World, new_id};
use crate::config::Switches;
use mux::types::{Asset, AssetStatus, MasterAccess, MasterStatus, MasterUrl};

/// What a download of the master may serve now.
#[derive(Debug, Clone)]
pub struct Served {
    pub seed: u64,
    /// The master's final size (its content depends on it: the `mdat` header, the `moov`).
    pub size: u64,
    /// How much of it is written now: a prefix while it grows.
    pub length: u64,
    /// With `master_validators`: an `ETag` and a `Last-Modified` that change as it grows.
    pub validators: Option<Validators>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators {
    pub etag: String,
    pub last_modified: String,
}

/// Unix milliseconds as an HTTP date (`Tue, 01 Dec 2026 09:00:00 GMT`).
fn http_date(unix_ms: i64) -> String {
    jiff::Timestamp::from_millisecond(unix_ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

impl World {
    /// `PUT /video/v1/assets/{id}/master-access`.
    pub fn put_master_access(
        &mut self,
        id: &str,
        access: MasterAccess,
        now: Instant,
        sw: &Switches,
    ) -> Result<(Asset, Vec<Event>), Refusal> {
        let mut events = self.advance(now, sw);
        let asset = self.asset_mut(id)?;
        if asset.status == AssetStatus::Errored {
            return Err(Refusal::Invalid(format!(
                "asset {id} is errored; master access cannot be changed"
            )));
        }
        match access {
            MasterAccess::Temporary => events.extend(self.request_master(id, now, sw)),
            MasterAccess::None => {
                let had_master = asset.master.take().is_some();
                asset.access = MasterAccess::None;
                asset.grants.clear();
                if had_master {
                    events.push(self.asset_event("video.asset.master.deleted", id));
                }
            }
            MasterAccess::Unknown => {
                return Err(Refusal::Invalid(
                    "master_access must be one of: temporary, none".into(),
                ));
            }
        }
        Ok((self.view(id).expect("exists"), events))
    }

    /// Turns master access on, or (per the switches) renews a ready master.
    pub(super) fn request_master(&mut self, id: &str, now: Instant, sw: &Switches) -> Vec<Event> {
        let Some(asset) = self.assets.get_mut(id) else {
            return Vec::new();
        };
        asset.access = MasterAccess::Temporary;
        let fresh = SimMaster {
            status: MasterStatus::Preparing,
            requested_at: now,
            ready_at: None,
            skid: None,
            expires_at: None,
        };
        match &mut asset.master {
            None => {
                asset.master = Some(fresh);
                vec![self.asset_event("video.asset.master.preparing", id)]
            }
            Some(m) if m.status == MasterStatus::Errored => {
                *m = fresh;
                vec![self.asset_event("video.asset.master.preparing", id)]
            }
            Some(m) if m.status == MasterStatus::Ready && sw.renew_on_repeat => {
                m.requested_at = now;
                let skid = new_id(20);
                let expires_at = now + sw.url_window();
                m.skid = Some(skid.clone());
                m.expires_at = Some(expires_at);
                asset.grants.push(Grant { skid, expires_at });
                vec![self.asset_event("video.asset.master.ready", id)]
            }
            // Preparing, or ready without renewal: nothing changes.
            Some(_) => Vec::new(),
        }
    }
    /// Checks a download URL's key and signature: what may be served if it works.
    pub fn authorize_download(
        &mut self,
        id: &str,
        skid: &str,
        signature: &str,
        now: Instant,
        sw: &Switches,
    ) -> Option<Served> {
        self.advance(now, sw);
        let expected = self.sign(id, skid);
        let asset = self.assets.get(id)?;
        let valid = asset
            .grants
            .iter()
            .any(|g| g.skid == skid && g.expires_at > now);
        if !valid
            || !bool::from(subtle::ConstantTimeEq::ct_eq(
                expected.as_bytes(),
                signature.as_bytes(),
            ))
        {
            return None;
        }
        let (length, since) = self.written(asset, now, sw);
        let validators = sw.master_validators.then(|| Validators {
            etag: format!("\"{:016x}-{length}\"", asset.seed),
            last_modified: http_date(self.unix_ms(since)),
        });
        Some(Served {
            seed: asset.seed,
            size: asset.size,
            length,
            validators,
        })
    }

    /// The master's length now: short of the final size while it is still written.
    pub(super) fn current_length(&self, asset: &SimAsset, now: Instant, sw: &Switches) -> u64 {
        self.written(asset, now, sw).0
    }

    /// How much of the master is written now, and since when that length holds. After
    /// `ready` it stays at `growth_initial_fraction` for `growth_pause`, then grows to its
    /// size over `growth`; `master_truncate` bytes of its end are never written.
    fn written(&self, asset: &SimAsset, now: Instant, sw: &Switches) -> (u64, Instant) {
        let ready_at = asset.master.as_ref().and_then(|m| m.ready_at);
        let whole = asset.size.saturating_sub(sw.master_truncate);
        let still = sw.growth.is_zero() && sw.growth_pause.is_zero();
        let Some(ready_at) = ready_at.filter(|_| !still) else {
            return (whole, ready_at.unwrap_or(now).min(now));
        };
        let growing_from = ready_at + sw.growth_pause;
        let grown_at = growing_from + sw.growth;
        let initial = ((asset.size as f64) * sw.growth_initial_fraction.clamp(0.0, 1.0)) as u64;
        let (length, since) = if now >= grown_at {
            (asset.size, grown_at)
        } else if now < growing_from {
            (initial, ready_at)
        } else {
            let progress = (now - growing_from).as_secs_f64() / sw.growth.as_secs_f64();
            let grown = ((asset.size - initial) as f64 * progress) as u64;
            (initial + grown, now)
        };
        (length.min(whole), since)
    }

    pub(super) fn sign(&self, id: &str, skid: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.signing_key).expect("any key length");
        mac.update(id.as_bytes());
        mac.update(b":");
        mac.update(skid.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    pub(super) fn url_for(&self, id: &str, skid: &str) -> MasterUrl {
        MasterUrl::new(format!(
            "{}/{id}/mezzanine.mp4?skid={skid}&signature={}",
            self.master_base,
            self.sign(id, skid)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::AssetSeed;
    use std::time::Duration;

    pub(super) fn switches() -> Switches {
        Switches {
            master_prepare_delay: Duration::from_secs(2),
            url_lifetime: Duration::from_secs(60),
            ..Switches::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn master_goes_preparing_ready_expired() {
        let sw = switches();
        let mut world = World::new("http://sim".into());
        let t0 = Instant::now();
        let (asset, _) = world.seed_asset(AssetSeed::default(), t0, &sw).unwrap();
        let (asset, events) = world
            .put_master_access(&asset.id, MasterAccess::Temporary, t0, &sw)
            .unwrap();
        assert_eq!(asset.master_status(), Some(MasterStatus::Preparing));
        assert_eq!(events.last().unwrap().kind, "video.asset.master.preparing");

        let events = world.advance(t0 + Duration::from_secs(2), &sw);
        assert_eq!(events[0].kind, "video.asset.master.ready");
        let ready = world.view(&asset.id).unwrap();
        assert!(ready.master_url().is_some());

        // The window counts from the request: at 60 s the URL is gone.
        world.advance(t0 + Duration::from_secs(60), &sw);
        let expired = world.view(&asset.id).unwrap();
        assert_eq!(
            (expired.master_access, expired.master),
            (MasterAccess::None, None)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_repeated_put_renews_only_when_switched_on() {
        let mut sw = switches();
        let mut world = World::new("http://sim".into());
        let t0 = Instant::now();
        let (asset, _) = world
            .seed_asset(
                AssetSeed {
                    master_access: Some(MasterAccess::Temporary),
                    ..Default::default()
                },
                t0,
                &sw,
            )
            .unwrap();
        world.advance(t0 + Duration::from_secs(3), &sw);
        let first = world
            .view(&asset.id)
            .unwrap()
            .master_url()
            .cloned()
            .unwrap();
        let (again, _) = world
            .put_master_access(
                &asset.id,
                MasterAccess::Temporary,
                t0 + Duration::from_secs(4),
                &sw,
            )
            .unwrap();
        assert_eq!(again.master_url(), Some(&first));
        sw.renew_on_repeat = true;
        let (renewed, _) = world
            .put_master_access(
                &asset.id,
                MasterAccess::Temporary,
                t0 + Duration::from_secs(5),
                &sw,
            )
            .unwrap();
        assert_ne!(renewed.master_url(), Some(&first));
    }

    #[tokio::test(start_paused = true)]
    async fn a_master_being_written_pauses_grows_and_its_validators_follow() {
        let mut sw = Switches {
            master_prepare_delay: Duration::ZERO,
            growth_initial_fraction: 0.5,
            growth_pause: Duration::from_secs(5),
            growth: Duration::from_secs(10),
            master_validators: true,
            ..switches()
        };
        let mut world = World::new("http://sim".into());
        let t0 = Instant::now();
        let seed = AssetSeed {
            size: Some(1000),
            master_access: Some(MasterAccess::Temporary),
            ..Default::default()
        };
        let (asset, _) = world.seed_asset(seed, t0, &sw).unwrap();
        let url = world
            .view(&asset.id)
            .unwrap()
            .master_url()
            .cloned()
            .unwrap();
        let query = url.expose().split_once('?').unwrap().1.to_owned();
        let param = |name: &str| {
            let pair = query.split('&').find(|p| p.starts_with(name)).unwrap();
            pair.split_once('=').unwrap().1.to_owned()
        };
        let (skid, signature) = (param("skid"), param("signature"));
        let mut at = |secs: u64, sw: &Switches| {
            let now = t0 + Duration::from_secs(secs);
            world
                .authorize_download(&asset.id, &skid, &signature, now, sw)
                .unwrap()
        };
        let (paused, still_paused) = (at(1, &sw), at(4, &sw));
        assert_eq!((paused.length, still_paused.length), (500, 500));
        assert_eq!(paused.validators, still_paused.validators);
        let growing = at(10, &sw);
        assert_eq!((growing.length, growing.size), (750, 1000));
        assert_ne!(growing.validators, paused.validators);
        assert_eq!(at(15, &sw).length, 1000);
        sw.master_truncate = 100;
        assert_eq!(at(16, &sw).length, 900);
        sw.master_validators = false;
        assert_eq!(at(16, &sw).validators, None);
    }
}
