//! What an item whose data cannot be encoded or decoded costs: that item's
//! result only, with an error that names its index.

use forkmap::{Error, Pool, ProcessPool, SerialPool, ThreadPool};
use serde::{Deserialize, Serialize, Serializer};

/// A result that refuses to be encoded when it holds 13.
#[derive(Debug, PartialEq, Deserialize)]
struct Picky(u64);

impl Serialize for Picky {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 == 13 {
            return Err(serde::ser::Error::custom("thirteen is unlucky"));
        }
        serializer.serialize_u64(self.0)
    }
}

fn picky(x: u64) -> Picky {
    Picky(x)
}

fn check_unencodable_result_names_its_item(pool: &impl Pool) {
    let results: Vec<Result<Picky, Error>> = pool.imap(picky, 10..16u64).collect();
    for (at, result) in results.iter().enumerate() {
        match result {
            Ok(value) => assert_eq!(value.0, 10 + at as u64),
            Err(err) => {
                assert_eq!(at, 3, "only item 3 (value 13) should fail: {err}");
                assert!(matches!(err, Error::Codec { .. }), "{err:?}");
                assert_eq!(err.index(), Some(3), "{err}");
            }
        }
    }
    assert!(results[3].is_err(), "item 3 should have failed");
    let err = pool.map(picky, 10..16u64).unwrap_err();
    assert_eq!(err.index(), Some(3), "{err}");
}

#[test]
fn an_unencodable_result_fails_its_item_with_its_index_on_every_pool() {
    check_unencodable_result_names_its_item(&ProcessPool::new(2).unwrap());
    check_unencodable_result_names_its_item(&ThreadPool::new(2).unwrap());
    check_unencodable_result_names_its_item(&SerialPool::new());
}
