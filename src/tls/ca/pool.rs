//! The CA material an index holds, by content: each bundle text read once
//! and each certificate parsed once, however many objects carry them.

use std::{
    borrow::Borrow,
    collections::{HashMap, HashSet},
    hash::{BuildHasher, Hash, Hasher},
    sync::{Arc, Weak},
};

use rustls::{RootCertStore, pki_types::UnixTime};

use super::{BlockProblem, BundleError, CaCertificate, parse_bundle_with};

/// The CA certificates an index holds, by content: a bundle that a
/// rotation leaves mostly as it was, or a copy whose text differs around
/// the blocks, is parsed once per certificate, and each certificate's DER
/// is held once.
///
/// Certificates that nothing else holds are dropped when the pool has grown
/// to twice what is held (plus [`Self::SLACK`]) since it last dropped any.
/// A clone of the index shares the certificates, which then count as held
/// in both until the clone is gone.
#[derive(Clone, Debug, Default)]
pub(crate) struct CertificatePool {
    certificates: HashSet<Pooled, foldhash::quality::RandomState>,
    /// The size at which certificates that only the pool holds are dropped.
    prune_at: usize,
}

impl CertificatePool {
    /// Room for certificates nothing holds before they are dropped.
    const SLACK: usize = 256;

    /// The pooled certificate with this encoding, else a newly parsed one.
    pub(crate) fn get_or_parse(
        &mut self,
        der: Vec<u8>,
    ) -> Result<Arc<CaCertificate>, BlockProblem> {
        if let Some(Pooled(certificate)) = self.certificates.get(der.as_slice()) {
            return Ok(certificate.clone());
        }
        let certificate = Arc::new(CaCertificate::from_der(der)?);
        if self.certificates.len() >= self.prune_at {
            self.certificates.retain(|Pooled(c)| Arc::strong_count(c) > 1);
            self.prune_at = 2 * self.certificates.len() + Self::SLACK;
        }
        self.certificates.insert(Pooled(certificate.clone()));
        Ok(certificate)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.certificates.len()
    }
}

/// A CA bundle as read at one time: the verdict on every block, shared by
/// all the objects whose `ca.crt` holds the same text while that verdict
/// holds (no certificate's validity has begun or ended since).
#[derive(Debug)]
pub(crate) struct ReadBundle {
    pub(crate) pem: Arc<[u8]>,
    pub(crate) verdict: Result<CaBundle, BundleError>,
    read_at: UnixTime,
    /// When the verdict may change with time alone: the next instant a
    /// certificate of the bundle begins or ends being valid.
    pub(crate) recheck_at: Option<UnixTime>,
}

impl ReadBundle {
    fn read(pem: &[u8], now: UnixTime, pool: &mut CertificatePool) -> Self {
        let mut recheck_at = None;
        let certificates = parse_bundle_with(pem, now, |der| {
            let certificate = pool.get_or_parse(der)?;
            recheck_at = recheck_at.into_iter().chain(certificate.next_validity_change(now)).min();
            Ok(certificate)
        });
        let verdict = certificates.map(|certificates| {
            let anchors = certificates.iter().map(|c| c.trust_anchor().clone()).collect();
            CaBundle {
                certificates: certificates.into(),
                roots: Arc::new(RootCertStore { roots: anchors }),
            }
        });
        Self { pem: pem.into(), verdict, read_at: now, recheck_at }
    }

    /// Whether reading the text at `now` would give this verdict: no
    /// certificate's validity began or ended between then and now.
    pub(crate) fn holds_at(&self, now: UnixTime) -> bool {
        self.read_at <= now && self.recheck_at.is_none_or(|at| now < at)
    }
}

/// A usable CA bundle, and its trust anchors built once for every policy
/// naming an object that holds it.
#[derive(Clone, Debug)]
pub(crate) struct CaBundle {
    pub(crate) certificates: Arc<[Arc<CaCertificate>]>,
    pub(crate) roots: Arc<RootCertStore>,
}

/// The CA bundles an index holds, by their text: trust-manager copies one
/// bundle into every namespace, and a thousand copies are read, and held,
/// once. Bundles are found by a seeded hash of their text and then
/// compared; the pool does not keep a bundle alive, so one that no object
/// holds any more is gone with its last object (keyed by the text itself,
/// the pool would keep up to a MiB of it per bundle gone).
#[derive(Clone, Debug, Default)]
pub(crate) struct BundlePool {
    bundles: HashMap<u64, Weak<ReadBundle>, foldhash::quality::RandomState>,
    /// The size at which entries of bundles gone are dropped.
    prune_at: usize,
    certificates: CertificatePool,
}

impl BundlePool {
    /// Room for entries of bundles gone before they are dropped.
    const SLACK: usize = 64;

    /// The bundle with this text as it reads at `now`: the one held
    /// already while its verdict holds, else the text read again (each
    /// certificate looked up among those held first).
    pub(crate) fn read(&mut self, pem: &[u8], now: UnixTime) -> Arc<ReadBundle> {
        let hash = self.bundles.hasher().hash_one(pem);
        let held = self.bundles.get(&hash).and_then(Weak::upgrade);
        if let Some(bundle) = held.filter(|b| *b.pem == *pem && b.holds_at(now)) {
            return bundle;
        }
        let bundle = Arc::new(ReadBundle::read(pem, now, &mut self.certificates));
        if self.bundles.len() >= self.prune_at {
            self.bundles.retain(|_, bundle| bundle.strong_count() > 0);
            self.prune_at = 2 * self.bundles.len() + Self::SLACK;
        }
        // A text whose hash collides with another's takes its place; the
        // other's objects keep their bundle, unshared from then on.
        self.bundles.insert(hash, Arc::downgrade(&bundle));
        bundle
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.bundles.len()
    }
}

/// A pooled certificate, found by its encoding.
#[derive(Clone, Debug)]
struct Pooled(Arc<CaCertificate>);

impl Borrow<[u8]> for Pooled {
    fn borrow(&self) -> &[u8] {
        &self.0.der
    }
}

impl Hash for Pooled {
    fn hash<H: Hasher>(&self, state: &mut H) {
        <[u8]>::hash(&self.0.der, state);
    }
}

impl PartialEq for Pooled {
    fn eq(&self, other: &Self) -> bool {
        self.0.der == other.0.der
    }
}

impl Eq for Pooled {}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const NOW: u64 = 1_800_000_000;

    /// The same encoding gives the same certificate; what no object holds
    /// any more is dropped, so the pool stays bounded.
    #[test]
    fn the_pool_shares_and_forgets() {
        let key = rcgen::KeyPair::generate().unwrap();
        let der = |serial: u64| {
            let mut params = rcgen::CertificateParams::new(vec!["ca.example".into()]).unwrap();
            params.serial_number = Some(serial.into());
            params.self_signed(&key).unwrap().der().to_vec()
        };
        let mut pool = CertificatePool::default();
        let first = der(0); // ECDSA signatures differ each time
        let held = pool.get_or_parse(first.clone()).unwrap();
        assert!(Arc::ptr_eq(&held, &pool.get_or_parse(first.clone()).unwrap()));
        for serial in 1..=3 * CertificatePool::SLACK as u64 {
            drop(pool.get_or_parse(der(serial)).unwrap());
        }
        assert!(pool.len() <= 2 + CertificatePool::SLACK, "{}", pool.len());
        assert!(Arc::ptr_eq(&held, &pool.get_or_parse(first).unwrap()), "a held one stays");
    }

    /// The same text is one bundle while its verdict holds; the pool keeps
    /// none alive.
    #[test]
    fn the_bundle_pool_shares_while_the_verdict_holds() {
        let at = |seconds| UnixTime::since_unix_epoch(Duration::from_secs(seconds));
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["ca.example".into()]).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(NOW as i64 + 100).unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        let mut pool = BundlePool::default();
        let read = pool.read(pem.as_bytes(), at(NOW));
        assert!(read.verdict.is_ok());
        assert_eq!(read.recheck_at, Some(at(NOW + 101)));
        assert!(Arc::ptr_eq(&read, &pool.read(pem.as_bytes(), at(NOW + 100))));
        // Its verdict may differ before it was read, or once the CA expired.
        let earlier = pool.read(pem.as_bytes(), at(NOW - 1));
        assert!(!Arc::ptr_eq(&read, &earlier) && earlier.verdict.is_ok());
        let expired = pool.read(pem.as_bytes(), at(NOW + 101));
        assert!(
            matches!(&expired.verdict, Err(BundleError::Blocks(e)) if matches!(e[0].problem, BlockProblem::Expired(_)))
        );
        assert!(Arc::ptr_eq(&expired, &pool.read(pem.as_bytes(), at(NOW + 200))));
        // Another text is another bundle, with the same certificate.
        let copy = pool.read(format!("# copy\n{pem}").as_bytes(), at(NOW));
        let certificates = |read: &ReadBundle| read.verdict.as_ref().unwrap().certificates.clone();
        assert!(Arc::ptr_eq(&certificates(&read)[0], &certificates(&copy)[0]));

        // The pool's entry for `copy` is its latest; still it keeps none.
        let weak = Arc::downgrade(&copy);
        drop((read, earlier, copy));
        assert_eq!(weak.strong_count(), 0, "the pool holds no bundle");
        for n in 0..3 * BundlePool::SLACK {
            drop(pool.read(format!("{n}\n{pem}").as_bytes(), at(NOW)));
        }
        assert!(pool.len() <= 2 + BundlePool::SLACK, "{}", pool.len());
        assert!(
            Arc::ptr_eq(&expired, &pool.read(pem.as_bytes(), at(NOW + 200))),
            "a held one stays"
        );
    }

    /// Whatever the order of reads and times (a clock going back too), the
    /// pool's verdict is the one reading the text afresh would give.
    #[test]
    fn the_pool_agrees_with_reading_afresh() {
        use proptest::prelude::*;

        let at = |seconds: u64| UnixTime::since_unix_epoch(Duration::from_secs(seconds));
        // Certificates valid over windows around NOW, so that reads at
        // NOW ± 40 cross their starts and ends.
        let windows = [(NOW - 30, NOW + 10), (NOW - 5, NOW + 30), (NOW + 15, NOW + 20)];
        let pems: Vec<String> = windows
            .iter()
            .map(|&(from, to)| {
                let mut params = rcgen::CertificateParams::new(vec!["ca.example".into()]).unwrap();
                let time = |s: u64| time::OffsetDateTime::from_unix_timestamp(s as i64).unwrap();
                (params.not_before, params.not_after) = (time(from), time(to));
                params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().pem()
            })
            .collect();
        let texts: Vec<String> =
            vec![pems[0].clone(), pems[1].clone() + &pems[2], pems.concat(), "x".into()];
        let ders = |certificates: &[Arc<CaCertificate>]| -> Vec<Vec<u8>> {
            certificates.iter().map(|c| c.der().to_vec()).collect()
        };
        proptest!(ProptestConfig::with_cases(256), |(reads in prop::collection::vec((0..texts.len(), 0u64..80), 1..40))| {
            let mut pool = BundlePool::default();
            let mut held = Vec::new();
            for (text, offset) in reads {
                let (pem, now) = (texts[text].as_bytes(), at(NOW - 40 + offset));
                let read = pool.read(pem, now);
                let pooled = read.verdict.as_ref().map(|b| ders(&b.certificates)).map_err(Clone::clone);
                let afresh = super::super::parse_bundle(pem, now).map(|c| ders(&c));
                prop_assert_eq!(pooled, afresh);
                held.push(read); // objects keep their bundles
            }
        });
    }
}
