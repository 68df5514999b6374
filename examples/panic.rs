//! A task that panics on one item: that item comes back as an `Err` that
//! names its index, the panic's message and where it panicked, while every
//! other item comes back with its value, and the pool keeps serving.
//!
//! `cargo run --release --example panic`
use forkmap::{Error, ProcessPool};

/// Parses an age; panics on text that is not a number.
fn parse_age(text: String) -> u32 {
    text.parse().expect("an age is a number")
}

fn main() -> Result<(), Error> {
    let pool = ProcessPool::new(2)?;
    let ages = ["31", "42", "forty", "27", "56"].map(String::from);

    // `imap` gives one result per item, in input order.
    for (index, result) in pool.imap(parse_age, ages.clone()).enumerate() {
        match result {
            Ok(age) => println!("item {index}: {age}"),
            Err(Error::Panic { index, panic, .. }) => {
                println!("item {index}: panicked");
                println!("    message:  {}", panic.message);
                println!("    location: {}", panic.location.as_deref().unwrap_or("?"));
            }
            Err(other) => return Err(other),
        }
    }

    // `map` gives all the values or an error that counts the failures and
    // carries the first one.
    let err = pool.map(parse_age, ages).unwrap_err();
    println!("map: {err}");
    assert!(err.is_panic());
    assert_eq!(err.index(), Some(2));

    // The worker caught the panic and lives on.
    let ages = pool.map(parse_age, ["8", "9"].map(String::from))?;
    println!("the same pool, next call: {ages:?}");
    Ok(())
}
