//! The database layer against real databases: every test runs on a fresh SQLite file and on a
//! fresh PostgreSQL database (skipped outside CI when no server is reachable).
//!
//! Tables made here are the tests' own; the gateway's tables come from the migrations.

// Helpers and closures are not `#[test]` functions, but a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kassa::both_databases;
use kassa::db::testing::TestDb;
use kassa::db::{migrations, Db, DbError, DbOptions, Dialect, Row, Tx, Value};

/// An error of the tests' own, beside the database's.
#[derive(Debug)]
enum TestError {
    Db(DbError),
    Refused(i64),
}

impl From<DbError> for TestError {
    fn from(e: DbError) -> Self {
        TestError::Db(e)
    }
}

/// The column type for bytes.
fn bytes_type(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "BLOB",
        Dialect::Postgres => "BYTEA",
    }
}

async fn setup(db: &Db, sql: &'static str) {
    db.write(move |tx| tx.batch_execute(sql)).await.unwrap();
}

/// Empties the database: every table goes, so every migration applies afresh.
async fn drop_everything(db: &Db) {
    db.write(|tx| {
        match tx.dialect() {
            Dialect::Postgres => {
                tx.batch_execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")?
            }
            Dialect::Sqlite => {
                tx.batch_execute("PRAGMA foreign_keys = OFF")?;
                let rows = tx.query(
                    "SELECT name FROM sqlite_master WHERE type = 'table' \
                     AND name NOT LIKE 'sqlite_%'",
                    &[],
                )?;
                for row in rows {
                    tx.batch_execute(&format!("DROP TABLE \"{}\"", row.text("name")?))?;
                }
            }
        }
        Ok::<_, DbError>(())
    })
    .await
    .unwrap();
}

async fn count(db: &Db, sql: &'static str) -> i64 {
    db.read(move |tx| tx.query_one(sql, &[])?.i64("n"))
        .await
        .unwrap()
}

#[test]
fn migration_lists_match_the_files() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        let mut files: Vec<String> = std::fs::read_dir(root.join(dialect.name()))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        let listed: Vec<String> = migrations(dialect)
            .iter()
            .map(|m| format!("{:04}_{}.sql", m.version, m.name))
            .collect();
        assert_eq!(files, listed, "{} migrations", dialect.name());
    }
    let names = |d| migrations(d).iter().map(|m| (m.version, m.name)).collect();
    let (sqlite, postgres): (Vec<_>, Vec<_>) = (names(Dialect::Sqlite), names(Dialect::Postgres));
    assert_eq!(sqlite, postgres, "both databases get the same migrations");
}

both_databases!(migrations_are_idempotent, |db: Db| async move {
    // TestDb migrated once already.
    db.migrate().await.unwrap();
    db.migrate().await.unwrap();
    let versions: Vec<i64> = db
        .read(|tx| {
            tx.query(
                "SELECT version FROM schema_migrations ORDER BY version",
                &[],
            )?
            .iter()
            .map(|row| row.i64("version"))
            .collect::<Result<_, DbError>>()
        })
        .await
        .unwrap();
    let known: Vec<i64> = migrations(db.dialect()).iter().map(|m| m.version).collect();
    assert_eq!(versions, known);
    db.write(|tx| {
        tx.execute(
            "INSERT INTO kv_meta (key, value) VALUES ($1, $2)",
            &["k".into(), "v".into()],
        )
    })
    .await
    .unwrap();
});

/// Several handles (as several processes would) migrate an empty database at once.
async fn concurrent_migrations(test: &TestDb) {
    drop_everything(&test.db()).await;
    let mut handles = Vec::new();
    for _ in 0..3 {
        handles.push(Db::open(test.url(), DbOptions::default()).await.unwrap());
    }
    let mut runs = Vec::new();
    for db in handles.iter().flat_map(|db| [db.clone(), db.clone()]) {
        runs.push(tokio::spawn(async move { db.migrate().await }));
    }
    for run in runs {
        run.await.unwrap().unwrap();
    }
    let db = test.db();
    let n = count(&db, "SELECT COUNT(*) AS n FROM schema_migrations").await;
    assert_eq!(n, migrations(db.dialect()).len() as i64);
    assert_eq!(count(&db, "SELECT COUNT(*) AS n FROM kv_meta").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_sqlite() {
    concurrent_migrations(&TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_postgres() {
    if let Some(test) = TestDb::postgres().await {
        concurrent_migrations(&test).await;
    }
}

both_databases!(values_round_trip, |db: Db| async move {
    let ddl = format!(
        "CREATE TABLE t_values (id BIGINT PRIMARY KEY, i BIGINT, t TEXT, b {}, flag BIGINT)",
        bytes_type(db.dialect())
    );
    db.write(move |tx| tx.batch_execute(&ddl)).await.unwrap();
    let all_bytes: Vec<u8> = (0..=255).collect();
    let rows: Vec<[Value; 5]> = vec![
        [1.into(), Value::Null, Value::Null, Value::Null, Value::Null],
        [
            2.into(),
            i64::MIN.into(),
            "".into(),
            Vec::new().into(),
            false.into(),
        ],
        [
            3.into(),
            i64::MAX.into(),
            "Қазақша, ünïcödé, 🙂, 'quoted' and $1".into(),
            all_bytes.clone().into(),
            true.into(),
        ],
        [
            4.into(),
            0_i32.into(),
            Some("x").into(),
            vec![0_u8].into(),
            None::<i64>.into(),
        ],
    ];
    let inserted = rows.clone();
    db.write(move |tx| {
        for row in &inserted {
            // Placeholders out of order: SQLite must bind them by number, not by position.
            let [id, i, t, b, flag] = row.clone();
            tx.execute(
                "INSERT INTO t_values (flag, b, t, i, id) VALUES ($5, $4, $3, $2, $1)",
                &[id, i, t, b, flag],
            )?;
        }
        Ok::<_, DbError>(())
    })
    .await
    .unwrap();

    let read: Vec<Row> = db
        .read(|tx| tx.query("SELECT id, i, t, b, flag FROM t_values ORDER BY id", &[]))
        .await
        .unwrap();
    assert_eq!(read.len(), rows.len());
    for (got, want) in read.iter().zip(&rows) {
        for (name, value) in ["id", "i", "t", "b", "flag"].iter().zip(want) {
            assert_eq!(got.get(name).unwrap(), value, "column {name}");
        }
    }
    let null = &read[0];
    assert_eq!(null.opt_i64("i").unwrap(), None);
    assert_eq!(null.opt_text("t").unwrap(), None);
    assert_eq!(null.opt_bytes("b").unwrap(), None);
    let max = &read[2];
    assert_eq!(max.i64("i").unwrap(), i64::MAX);
    assert_eq!(read[1].i64("i").unwrap(), i64::MIN);
    assert_eq!(read[1].text("t").unwrap(), "");
    assert_eq!(read[1].bytes("b").unwrap(), Vec::<u8>::new());
    assert_eq!(max.bytes("b").unwrap(), all_bytes);
    assert!(max.bool("flag").unwrap());
    assert!(!read[1].bool("flag").unwrap());
    assert_eq!(
        max.text("t").unwrap(),
        "Қазақша, ünïcödé, 🙂, 'quoted' and $1"
    );

    // Wrong use is an error, not a panic.
    for result in [
        max.i64("missing").map(drop),
        max.i64("t").map(drop),
        max.text("i").map(drop),
        max.bytes("t").map(drop),
        null.i64("i").map(drop),
        null.text("t").map(drop),
        max.bool("i").map(drop),
    ] {
        assert!(matches!(result, Err(DbError::Decode { .. })), "{result:?}");
    }

    // Parameters select rows, and query_opt/query_one agree.
    let found = db
        .read(|tx| {
            let one = tx.query_one("SELECT t FROM t_values WHERE i = $1", &[i64::MAX.into()])?;
            let none = tx.query_opt("SELECT t FROM t_values WHERE id = $1", &[99.into()])?;
            let many = tx.query_opt("SELECT t FROM t_values", &[]);
            Ok::<_, DbError>((one.text("t")?, none.is_none(), many.is_err()))
        })
        .await
        .unwrap();
    assert_eq!(found.0, "Қазақша, ünïcödé, 🙂, 'quoted' and $1");
    assert!(found.1 && found.2);
});

both_databases!(a_failed_write_is_rolled_back_alone, |db: Db| async move {
    setup(
        &db,
        "CREATE TABLE t_batch (id BIGINT PRIMARY KEY, v TEXT NOT NULL)",
    )
    .await;
    // The first write holds the SQLite writer a moment, so the others queue into one batch;
    // they are sent once it holds it.
    let (holding, held) = std::sync::mpsc::channel::<()>();
    let slow = {
        let db = db.clone();
        tokio::spawn(async move {
            db.write(move |tx| {
                let inserted = tx.execute("INSERT INTO t_batch (id, v) VALUES (0, 'slow')", &[]);
                let _ = holding.send(());
                std::thread::sleep(Duration::from_millis(200));
                inserted
            })
            .await
        })
    };
    tokio::task::spawn_blocking(move || held.recv())
        .await
        .expect("joined")
        .expect("the slow write holds the writer");
    let mut tasks = Vec::new();
    for id in 1..=40_i64 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            db.write(move |tx| {
                tx.execute(
                    "INSERT INTO t_batch (id, v) VALUES ($1, $2)",
                    &[id.into(), "kept".into()],
                )?;
                match id % 10 {
                    // Changes made, then the closure refuses: they must go.
                    3 => Err(TestError::Refused(id)),
                    // A failed statement whose error the closure swallows still fails the write.
                    5 => {
                        let duplicate =
                            tx.execute("INSERT INTO t_batch (id, v) VALUES (0, 'dup')", &[]);
                        assert!(matches!(duplicate, Err(DbError::UniqueViolation { .. })));
                        Ok(id)
                    }
                    7 => panic!("write {id} panics on purpose"),
                    _ => Ok(id),
                }
            })
            .await
        }));
    }
    assert_eq!(slow.await.unwrap().unwrap(), 1);
    for (i, task) in tasks.into_iter().enumerate() {
        let id = i as i64 + 1;
        match (id % 10, task.await) {
            (3, Ok(Err(TestError::Refused(n)))) => assert_eq!(n, id),
            (5, Ok(Err(TestError::Db(DbError::UniqueViolation { .. })))) => {}
            (7, Err(join)) => assert!(join.is_panic(), "write {id}"),
            (3 | 5 | 7, other) => panic!("write {id}: {other:?}"),
            (_, result) => assert_eq!(result.unwrap().unwrap(), id),
        }
    }
    let ids: Vec<i64> = db
        .read(|tx| {
            tx.query("SELECT id FROM t_batch ORDER BY id", &[])?
                .iter()
                .map(|row| row.i64("id"))
                .collect::<Result<_, DbError>>()
        })
        .await
        .unwrap();
    let expected: Vec<i64> = (0..=40)
        .filter(|id| ![3, 5, 7].contains(&(id % 10)))
        .collect();
    assert_eq!(ids, expected);
    // The writer survived the panic.
    db.write(|tx| tx.execute("DELETE FROM t_batch WHERE id = 0", &[]))
        .await
        .unwrap();
});

both_databases!(unique_violation_has_its_own_variant, |db: Db| async move {
    let insert = |db: Db, key: &'static str| async move {
        db.write(move |tx| {
            tx.execute(
                "INSERT INTO kv_meta (key, value) VALUES ($1, 'v')",
                &[key.into()],
            )
        })
        .await
    };
    assert_eq!(insert(db.clone(), "a").await.unwrap(), 1);
    let err = insert(db.clone(), "a").await.unwrap_err();
    assert!(matches!(err, DbError::UniqueViolation { .. }), "{err:?}");
    // The message names the statement, never the values.
    assert!(err.to_string().contains("INSERT INTO kv_meta"), "{err}");
    // ON CONFLICT is the portable way to tolerate it.
    let changed = db
        .write(|tx| {
            tx.execute(
                "INSERT INTO kv_meta (key, value) VALUES ($1, 'w') ON CONFLICT (key) DO NOTHING",
                &["a".into()],
            )
        })
        .await
        .unwrap();
    assert_eq!(changed, 0);
    // Other statement errors are Query errors.
    let err = db
        .write(|tx| tx.execute("INSERT INTO no_such_table VALUES ($1)", &[1.into()]))
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::Query { .. }), "{err:?}");
});

both_databases!(
    deferred_statements_land_with_the_transaction,
    |db: Db| async move {
        setup(
            &db,
            "CREATE TABLE t_later (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)",
        )
        .await;
        // Deferred statements are in the transaction before the next statement reads, in order,
        // and are committed with it when nothing follows them.
        let seen = db
            .write(|tx| {
                tx.defer("INSERT INTO t_later (id, v) VALUES (1, 10)", &[])?;
                tx.defer("UPDATE t_later SET v = v + $1 WHERE id = 1", &[5.into()])?;
                let v = tx
                    .query_one("SELECT v FROM t_later WHERE id = 1", &[])?
                    .i64("v")?;
                tx.defer("INSERT INTO t_later (id, v) VALUES (2, $1)", &[v.into()])?;
                Ok::<_, DbError>(v)
            })
            .await
            .unwrap();
        assert_eq!(seen, 15);
        assert_eq!(
            count(&db, "SELECT CAST(SUM(v) AS BIGINT) AS n FROM t_later").await,
            30
        );
        // A deferred statement that fails fails the whole transaction, even as the last one.
        let err = db
            .write(|tx| {
                tx.execute("UPDATE t_later SET v = 0", &[])?;
                tx.defer("INSERT INTO t_later (id, v) VALUES (1, 1)", &[])?;
                Ok::<_, DbError>(())
            })
            .await
            .unwrap_err();
        assert!(matches!(err, DbError::UniqueViolation { .. }), "{err:?}");
        // …and one that fails before a read fails the read, and nothing of it stays.
        let err = db
            .write(|tx| {
                tx.execute("UPDATE t_later SET v = 0", &[])?;
                tx.defer("INSERT INTO t_later (id, v) VALUES (2, 2)", &[])?;
                tx.query("SELECT v FROM t_later", &[])
            })
            .await
            .unwrap_err();
        assert!(matches!(err, DbError::UniqueViolation { .. }), "{err:?}");
        assert_eq!(
            count(&db, "SELECT CAST(SUM(v) AS BIGINT) AS n FROM t_later").await,
            30
        );
    }
);

both_databases!(concurrent_writers_land_exactly_once, |db: Db| async move {
    setup(
        &db,
        "CREATE TABLE t_many (id BIGINT PRIMARY KEY, task BIGINT NOT NULL);
         CREATE TABLE t_counter (id BIGINT PRIMARY KEY, n BIGINT NOT NULL);
         INSERT INTO t_counter (id, n) VALUES (1, 0);",
    )
    .await;
    const TASKS: i64 = 64;
    const EACH: i64 = 32;
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..EACH {
                let id = task * EACH + i;
                let returned = db
                    .write(move |tx| {
                        tx.execute("UPDATE t_counter SET n = n + 1 WHERE id = 1", &[])?;
                        tx.query_one(
                            "INSERT INTO t_many (id, task) VALUES ($1, $2) RETURNING id",
                            &[id.into(), task.into()],
                        )?
                        .i64("id")
                    })
                    .await
                    .unwrap();
                assert_eq!(returned, id);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let total = TASKS * EACH;
    assert_eq!(count(&db, "SELECT COUNT(*) AS n FROM t_many").await, total);
    assert_eq!(
        count(&db, "SELECT COUNT(DISTINCT id) AS n FROM t_many").await,
        total
    );
    assert_eq!(count(&db, "SELECT n FROM t_counter").await, total);
});

both_databases!(readers_never_see_half_a_transaction, |db: Db| async move {
    setup(
        &db,
        "CREATE TABLE t_accounts (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL);
         INSERT INTO t_accounts (id, balance) VALUES (1, 1000), (2, 0);",
    )
    .await;
    let done = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..4 {
        let (db, done) = (db.clone(), Arc::clone(&done));
        readers.push(tokio::spawn(async move {
            let mut reads = 0;
            while !done.load(Ordering::Relaxed) || reads == 0 {
                // Two statements: the snapshot must hold across them.
                let (a, b) = db
                    .read(|tx| {
                        let balance = |tx: &mut dyn Tx, id: i64| {
                            tx.query_one(
                                "SELECT balance FROM t_accounts WHERE id = $1",
                                &[id.into()],
                            )?
                            .i64("balance")
                        };
                        Ok::<_, DbError>((balance(tx, 1)?, balance(tx, 2)?))
                    })
                    .await
                    .unwrap();
                assert_eq!(a + b, 1000, "a reader saw {a} + {b}");
                reads += 1;
            }
            reads
        }));
    }
    let mut writers = Vec::new();
    for w in 0..8_i64 {
        let db = db.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..40_i64 {
                // Same order of rows in every write: opposite orders would deadlock on PostgreSQL.
                let amount = (w * 40 + i) % 7 - 3;
                db.write(move |tx| {
                    tx.execute(
                        "UPDATE t_accounts SET balance = balance - $1 WHERE id = 1",
                        &[amount.into()],
                    )?;
                    tx.execute(
                        "UPDATE t_accounts SET balance = balance + $1 WHERE id = 2",
                        &[amount.into()],
                    )
                })
                .await
                .unwrap();
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    for reader in readers {
        assert!(reader.await.unwrap() > 0);
    }
});

/// Two writes that lock two rows in opposite orders deadlock; PostgreSQL aborts one, which is
/// run again and succeeds. (SQLite has a single writer: no deadlock to test.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlocks_are_retried_postgres() {
    let Some(test) = TestDb::postgres().await else {
        return;
    };
    let db = test.db();
    setup(
        &db,
        "CREATE TABLE t_rows (id BIGINT PRIMARY KEY, n BIGINT NOT NULL);
         INSERT INTO t_rows (id, n) VALUES (1, 0), (2, 0);",
    )
    .await;
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let runs = Arc::new(AtomicUsize::new(0));
    let mut writes = Vec::new();
    for (first, second) in [(1_i64, 2_i64), (2, 1)] {
        let (db, barrier, runs) = (db.clone(), Arc::clone(&barrier), Arc::clone(&runs));
        writes.push(tokio::spawn(async move {
            db.write(move |tx| {
                let run = runs.fetch_add(1, Ordering::SeqCst);
                let bump = "UPDATE t_rows SET n = n + 1 WHERE id = $1";
                tx.execute(bump, &[first.into()])?;
                if run < 2 {
                    // Both hold their first row before asking for the other's.
                    barrier.wait();
                }
                tx.execute(bump, &[second.into()])
            })
            .await
        }));
    }
    for write in writes {
        assert_eq!(write.await.unwrap().unwrap(), 1);
    }
    // At least one ran again; under load PostgreSQL may abort the re-run too (seen once in CI),
    // which is retried the same way.
    assert!(runs.load(Ordering::SeqCst) >= 3, "one of the two ran again");
    assert_eq!(
        count(&db, "SELECT CAST(SUM(n) AS BIGINT) AS n FROM t_rows").await,
        4
    );
}

/// Pooled connections that the server closed (as in a restart) are replaced, not reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_connections_are_replaced_postgres() {
    let Some(test) = TestDb::postgres().await else {
        return;
    };
    let db = test.db();
    // `lone`: a statement on its own (`Db::query`), first on its connection, and not yet
    // prepared on any after the connections are ended.
    let busy = |db: Db, lone: &'static str| async move {
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                let rows = db.query(lone.to_owned(), Vec::new()).await.unwrap();
                assert_eq!(rows.len(), 1);
                db.write(|tx| tx.execute("SELECT pg_sleep(0.02)", &[]))
                    .await
                    .unwrap();
                db.read(|tx| tx.query_one("SELECT 1::BIGINT AS n", &[]))
                    .await
                    .unwrap();
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    };
    // Fill the pool, then end every other connection of it from one of them.
    busy(db.clone(), "SELECT 1::BIGINT AS n").await;
    let ended = db
        .write(|tx| {
            tx.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
        })
        .await
        .unwrap();
    assert!(ended >= 4, "only {ended} connections were open");
    // pg_terminate_backend only signals: wait until they are gone, as after a restart.
    let deadline = Instant::now() + Duration::from_secs(10);
    let others = "SELECT COUNT(*) AS n FROM pg_stat_activity \
                  WHERE datname = current_database() AND pid <> pg_backend_pid()";
    while count(&db, others).await > 0 {
        assert!(Instant::now() < deadline, "terminated connections linger");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    busy(db, "SELECT 2::BIGINT AS n").await;
}

both_databases!(reads_cannot_write, |db: Db| async move {
    let result = db
        .read(|tx| tx.execute("INSERT INTO kv_meta (key, value) VALUES ('r', 'r')", &[]))
        .await;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(count(&db, "SELECT COUNT(*) AS n FROM kv_meta").await, 0);
});

both_databases!(claims_skip_locked_rows, |db: Db| async move {
    setup(
        &db,
        "CREATE TABLE t_jobs (id BIGINT PRIMARY KEY, locked_until BIGINT NOT NULL);
         INSERT INTO t_jobs (id, locked_until) VALUES (1, 0), (2, 0), (3, 0);",
    )
    .await;
    let claim = format!(
        "UPDATE t_jobs SET locked_until = $1 WHERE id IN \
         (SELECT id FROM t_jobs WHERE locked_until < $1 ORDER BY id LIMIT 2{}) RETURNING id",
        db.dialect().skip_locked()
    );
    let claimed = db
        .write(move |tx| {
            let mut ids = tx
                .query(&claim, &[100.into()])?
                .iter()
                .map(|row| row.i64("id"))
                .collect::<Result<Vec<_>, _>>()?;
            ids.sort();
            Ok::<_, DbError>(ids)
        })
        .await
        .unwrap();
    assert_eq!(claimed, vec![1, 2]);
});

/// Prints writes/s with 64 concurrent writers; not asserted. Run with
/// `cargo test --release -p kassa --test db -- --ignored --nocapture throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test"]
async fn throughput() {
    let sqlite = TestDb::sqlite().await;
    measure("sqlite", &sqlite.db()).await;
    if let Some(postgres) = TestDb::postgres().await {
        measure("postgres", &postgres.db()).await;
    }
}

async fn measure(name: &str, db: &Db) {
    setup(
        db,
        "CREATE TABLE t_invoices (id BIGINT PRIMARY KEY, amount BIGINT NOT NULL, \
         status TEXT NOT NULL, created_at BIGINT NOT NULL);
         CREATE TABLE t_events (id BIGINT PRIMARY KEY, invoice_id BIGINT NOT NULL, kind TEXT NOT NULL);",
    )
    .await;
    for (label, statements) in [("1 insert", 1), ("invoice-like, 4 statements", 4)] {
        const TASKS: i64 = 64;
        const EACH: i64 = 150;
        let offset = statements * 1_000_000;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                for i in 0..EACH {
                    let id = offset + task * EACH + i;
                    let t = Instant::now();
                    db.write(move |tx| write_invoice(tx, id, statements))
                        .await
                        .unwrap();
                    latencies.push(t.elapsed());
                }
                latencies
            }));
        }
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await.unwrap());
        }
        let elapsed = started.elapsed();
        latencies.sort();
        let at =
            |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        println!(
            "{name}: {label}: {:.0} writes/s, p50 {:?}, p99 {:?} ({} writes, 64 writers)",
            latencies.len() as f64 / elapsed.as_secs_f64(),
            at(0.50),
            at(0.99),
            latencies.len()
        );
    }
    let seen: HashSet<i64> = db
        .read(|tx| {
            tx.query("SELECT id FROM t_invoices", &[])?
                .iter()
                .map(|row| row.i64("id"))
                .collect::<Result<_, DbError>>()
        })
        .await
        .unwrap();
    assert_eq!(seen.len(), 2 * 64 * 150);
}

fn write_invoice(tx: &mut dyn Tx, id: i64, statements: i64) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO t_invoices (id, amount, status, created_at) VALUES ($1, $2, 'new', $3)",
        &[id.into(), 150_000.into(), 1_700_000_000_000_i64.into()],
    )?;
    if statements > 1 {
        tx.query_one("SELECT status FROM t_invoices WHERE id = $1", &[id.into()])?;
        tx.execute(
            "UPDATE t_invoices SET status = 'pending' WHERE id = $1",
            &[id.into()],
        )?;
        tx.execute(
            "INSERT INTO t_events (id, invoice_id, kind) VALUES ($1, $1, 'created')",
            &[id.into()],
        )?;
    }
    Ok(())
}

/// The writer is durable (WAL, fsync at every commit) and enforces foreign keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_connection_settings() {
    let test = TestDb::sqlite().await;
    let pragma = |name: &'static str| {
        let db = test.db();
        async move {
            db.write(move |tx| tx.query_one(&format!("PRAGMA {name}"), &[]))
                .await
                .unwrap()
        }
    };
    assert_eq!(
        pragma("journal_mode").await.text("journal_mode").unwrap(),
        "wal"
    );
    // 2 is FULL.
    assert_eq!(pragma("synchronous").await.i64("synchronous").unwrap(), 2);
    assert_eq!(pragma("foreign_keys").await.i64("foreign_keys").unwrap(), 1);
}

#[tokio::test]
async fn bad_urls_are_connection_errors() {
    for url in [
        "mysql://localhost/kassa",
        "sqlite://",
        "sqlite:///nonexistent-dir/kassa.db",
        "postgres://postgres@127.0.0.1:1/postgres",
    ] {
        let result = Db::open(url, DbOptions::default()).await;
        assert!(
            matches!(result, Err(DbError::Connection(_))),
            "{url}: {result:?}"
        );
    }
}
