//! The record builders over a whole image: registration, fencing with leadership
//! moves across topics, unfencing, and unclean election by topic config.

use uuid::Uuid;

use super::*;
use crate::metadata::ConfigResource;

/// A partition with these leader, epoch, replicas and ISR (shared by the
/// controller's unit tests).
pub(crate) fn part(leader: i32, epoch: i32, replicas: &[i32], isr: &[i32]) -> crate::metadata::PartitionImage {
    crate::metadata::PartitionImage { leader, leader_epoch: epoch, replicas: replicas.to_vec(), isr: isr.to_vec(), ..Default::default() }
}

fn reg(id: i32) -> Registration {
    Registration { id, incarnation: Uuid::new_v4(), host: format!("h{id}"), port: 9090 + id, rack: None }
}

fn apply(img: &mut Image, records: &[MetadataRecord]) {
    let offset = img.last_offset + 1;
    for r in records {
        img.apply(offset, r).unwrap();
    }
}

/// Brokers 1-3 registered and unfenced, topic "t" with partitions led by 1, 2, 3, RF 3.
fn cluster() -> (Image, Config) {
    let config = Config::default();
    let mut img = Image::empty();
    for id in 1..=3 {
        let r = registration_records(&img, &reg(id), false, "cid", &config);
        apply(&mut img, &r);
        let r = liveness_records(&img, &[], &[id], &config);
        apply(&mut img, &r);
    }
    let id = Uuid::new_v4();
    let mut r = vec![MetadataRecord::Topic { name: "t".into(), id }];
    for (p, replicas) in [vec![1, 2, 3], vec![2, 3, 1], vec![3, 1, 2]].into_iter().enumerate() {
        r.push(MetadataRecord::Partition { topic_id: id, partition: p as i32, leader: replicas[0], leader_epoch: 0, isr: replicas.clone(), replicas, adding_replicas: vec![], removing_replicas: vec![] });
    }
    apply(&mut img, &r);
    (img, config)
}

#[test]
fn first_registration_logs_the_cluster_id_and_starts_fenced() {
    let config = Config::default();
    let img = Image::empty();
    let r1 = reg(1);
    let records = registration_records(&img, &r1, false, "cid", &config);
    assert_eq!(records[0], MetadataRecord::ClusterId("cid".into()));
    let mut img2 = img.clone();
    apply(&mut img2, &records);
    assert!(!img2.is_live(1) && img2.cluster_id.as_deref() == Some("cid"));
    assert!(registration_records(&img2, &r1, false, "other", &config).is_empty(), "registering twice is a no-op");
    // A single voter registers unfenced at once.
    let mut solo = Image::empty();
    let r = registration_records(&solo.clone(), &r1, true, "cid", &config);
    apply(&mut solo, &r);
    assert!(solo.is_live(1));
}

#[test]
fn fencing_moves_leadership_and_shrinks_isrs() {
    let (mut img, config) = cluster();
    let records = liveness_records(&img, &[2], &[], &config);
    apply(&mut img, &records);
    assert!(!img.is_live(2));
    let t = img.topic("t").unwrap();
    let got: Vec<(i32, i32, Vec<i32>)> = t.partitions.iter().map(|p| (p.leader, p.leader_epoch, p.isr.clone())).collect();
    assert_eq!(got, vec![(1, 0, vec![1, 3]), (3, 1, vec![3, 1]), (3, 0, vec![3, 1])]);

    // 3 goes too, in a batch of its own: 1 is all that is left.
    let records = liveness_records(&img, &[3], &[], &config);
    apply(&mut img, &records);
    let t = img.topic("t").unwrap();
    assert!(t.partitions.iter().all(|p| p.leader == 1 && p.isr == vec![1]), "{:?}", t.partitions);

    // 1 goes: everything offline, the ISR remembers 1; 1 returns and leads again.
    let r = liveness_records(&img, &[1], &[], &config);
    apply(&mut img, &r);
    assert!(img.topic("t").unwrap().partitions.iter().all(|p| p.leader == -1 && p.isr == vec![1]));
    let r = liveness_records(&img, &[], &[2], &config);
    apply(&mut img, &r);
    assert!(img.topic("t").unwrap().partitions.iter().all(|p| p.leader == -1), "2 is out of sync: no clean election");
    let r = liveness_records(&img, &[], &[1], &config);
    apply(&mut img, &r);
    assert!(img.topic("t").unwrap().partitions.iter().all(|p| p.leader == 1));
}

#[test]
fn two_brokers_fenced_together_never_elect_each_other() {
    let (mut img, config) = cluster();
    let r = liveness_records(&img, &[1, 2], &[], &config);
    apply(&mut img, &r);
    let t = img.topic("t").unwrap();
    assert!(t.partitions.iter().all(|p| p.leader == 3 && p.isr == vec![3]), "{:?}", t.partitions);
    assert_eq!(t.partitions[0].leader_epoch, 1, "one move, straight to 3");
}

#[test]
fn topic_config_allows_unclean_election() {
    let (mut img, config) = cluster();
    let r = liveness_records(&img, &[2, 3], &[], &config);
    apply(&mut img, &r);
    apply(&mut img, &[MetadataRecord::Config { resource: ConfigResource::Topic("t".into()), key: "unclean.leader.election.enable".into(), value: Some("true".into()) }]);
    let r = liveness_records(&img, &[1], &[], &config);
    apply(&mut img, &r);
    let r = liveness_records(&img, &[], &[2], &config);
    apply(&mut img, &r);
    let t = img.topic("t").unwrap();
    assert!(t.partitions.iter().all(|p| p.leader == 2 && p.isr == vec![2]), "{:?}", t.partitions);
}

#[test]
fn a_restart_under_a_new_incarnation_fences_the_old_one_first() {
    let (mut img, config) = cluster();
    let records = registration_records(&img, &reg(1), false, "cid", &config);
    apply(&mut img, &records);
    assert!(!img.is_live(1));
    let p0 = &img.topic("t").unwrap().partitions[0];
    assert_eq!((p0.leader, p0.leader_epoch), (2, 1));
    assert_eq!(img.brokers[&1].host, "h1");
}
