//! The storage conformance suite on both backends: SQLite files, and databases on a real
//! PostgreSQL server this test binary starts on loopback (and stops when it exits).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::OnceLock;

use strongroom_store::conformance;
use strongroom_store::testing::{PgDatabase, PgServer, SqliteDatabase};

fn server() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(|| PgServer::start().unwrap_or_else(|e| panic!("PostgreSQL: {e}")))
}

fn postgres() -> PgDatabase {
    PgDatabase {
        url: server().create_database().unwrap(),
    }
}

fn sqlite() -> SqliteDatabase {
    SqliteDatabase::fresh().unwrap()
}

macro_rules! on_every_backend {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    strongroom_store::conformance::$check(&super::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    strongroom_store::conformance::$check(&super::postgres()).await;
                }
            )*
        }
        #[test]
        fn every_check_runs() {
            let here = [$(stringify!($check)),*];
            assert_eq!(here.as_slice(), conformance::CHECKS);
        }
    };
}

on_every_backend!(
    root_record,
    audit_order_and_conflicts,
    effects_are_all_or_nothing,
    replicas_race_for_each_number,
    concurrent_answers_fail_alone,
    everything_survives_reopening,
    a_later_layout_is_refused,
    the_append_lock_is_held_by_one_at_a_time,
);
