//! The master's lifecycle through the API (`PUT master-access`), and the file at its signed
//! URL: who may download it, and how long it is now.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::time::Instant;

use super::{Event, Grant, Refusal, SimAsset, SimMaster, World, new_id};
use crate::config::Switches;
use mux::types::{Asset, AssetStatus, MasterAccess, MasterStatus, MasterUrl};

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
                let expires_at = now + sw.url_lifetime;
                m.skid = Some(skid.clone());
                m.expires_at = Some(expires_at);
                asset.grants.push(Grant { skid, expires_at });
                vec![self.asset_event("video.asset.master.ready", id)]
            }
            // Preparing, or ready without renewal: nothing changes.
            Some(_) => Vec::new(),
        }
    }
    /// Checks a download URL's key and signature: `Some((seed, length now))` if it works.
    pub fn authorize_download(
        &mut self,
        id: &str,
        skid: &str,
        signature: &str,
        now: Instant,
        sw: &Switches,
    ) -> Option<(u64, u64)> {
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
        Some((asset.seed, self.current_length(asset, now, sw)))
    }

    /// The master's length now: short of the final size while it still grows.
    pub(super) fn current_length(&self, asset: &SimAsset, now: Instant, sw: &Switches) -> u64 {
        let ready_at = asset.master.as_ref().and_then(|m| m.ready_at);
        match ready_at {
            Some(ready_at) if !sw.growth.is_zero() && now < ready_at + sw.growth => {
                let progress = (now - ready_at).as_secs_f64() / sw.growth.as_secs_f64();
                let share =
                    sw.growth_initial_fraction + (1.0 - sw.growth_initial_fraction) * progress;
                ((asset.size as f64) * share.clamp(0.0, 1.0)) as u64
            }
            _ => asset.size,
        }
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
}
