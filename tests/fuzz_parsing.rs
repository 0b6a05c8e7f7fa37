//! Property tests ("fuzzing") of the code that parses what clients send:
//! opaque ids, cursors and the input validators. Whatever the bytes, they
//! return a value or an `INVALID_INPUT`/`NOT_FOUND` error, never panic, and
//! what they accept round-trips.
//!
//! CI runs the default number of cases; for a longer run by hand:
//! `PROPTEST_CASES=100000 cargo test --release --test fuzz_parsing` (20,000 cases
//! of each property take about 7 s in a debug build). Ids are positive: a
//! well-formed id of zero or below names nothing (`NOT_FOUND`).

use memberdesk::domain::validation;
use memberdesk::ids::{self, Cursor, Kind};
use proptest::prelude::*;

const KINDS: [Kind; 2] = [Kind::User, Kind::Group];

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[A-Za-z0-9+/=_-]{0,64}",
        proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

proptest! {
    #[test]
    fn ids_round_trip_and_garbage_is_refused(id in 1..=i64::MAX, garbage in any_text()) {
        for kind in KINDS {
            let encoded = ids::encode(kind, id);
            prop_assert_eq!(ids::decode(kind, &encoded, "id").ok(), Some(id));
            if let Err(err) = ids::decode(kind, &garbage, "id") {
                prop_assert!(["INVALID_INPUT", "NOT_FOUND"].contains(&err.code()), "{}", err.code());
            }
        }
        // An id of one kind never names another.
        prop_assert!(ids::decode(Kind::Group, &ids::encode(Kind::User, id), "id").is_err());
    }

    #[test]
    fn cursors_never_panic(garbage in any_text()) {
        if let Err(err) = Cursor::decode(&garbage) {
            prop_assert_eq!(err.code(), "INVALID_INPUT");
        }
    }

    #[test]
    fn validators_accept_or_refuse_with_the_field(raw in any_text()) {
        for result in [
            validation::username("username", &raw).map(|_| ()),
            validation::email("email", &raw).map(|_| ()),
            validation::line("firstName", &raw, 150, false).map(|_| ()),
            validation::reason("reason", Some(&raw)).map(|_| ()),
        ] {
            if let Err(err) = result {
                prop_assert_eq!(err.code(), "INVALID_INPUT");
            }
        }
        if let Ok(name) = validation::username("username", &raw) {
            // The key is stable: normalizing twice changes nothing, and an
            // accepted name never carries a NUL or a control character.
            let key = name.key().to_owned();
            prop_assert_eq!(validation::username_key(&key), key.clone());
            prop_assert!(!name.as_str().chars().any(char::is_control));
        }
    }
}
