//! The linked DuckDB is the pinned one and keeps what it is given in a file.

use ramanujan_duckdb::DUCKDB_VERSION;
use ramanujan_duckdb::duckdb::{Connection, params};

#[test]
fn a_duckdb_file_keeps_what_was_written_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("smoke.duckdb");
    {
        let db = Connection::open(&path).unwrap();
        let version: String = db.query_row("SELECT version()", [], |row| row.get(0)).unwrap();
        assert_eq!(version, DUCKDB_VERSION);
        db.execute_batch("CREATE TABLE events (at_us BIGINT, agent VARCHAR, kind VARCHAR)")
            .unwrap();
        let mut insert = db.prepare("INSERT INTO events VALUES (?, ?, ?)").unwrap();
        for i in 0..1_000i64 {
            insert.execute(params![i, format!("agent-{}", i % 9), "merge"]).unwrap();
        }
    }
    // Opened again: what was written is there.
    let db = Connection::open(&path).unwrap();
    let (count, agents, last): (i64, i64, i64) = db
        .query_row(
            "SELECT count(*), count(DISTINCT agent), max(at_us) FROM events",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    assert_eq!((count, agents, last), (1_000, 9, 999));
}
