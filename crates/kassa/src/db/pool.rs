//! A small blocking-connection pool: SQLite's readers and PostgreSQL's connections.
//!
//! Callers wait for a permit asynchronously (a fair tokio semaphore, so no thread is parked and
//! the longest waiter goes first), then the work runs on tokio's blocking threads with a
//! connection taken from the idle list, or a new one when there is none. A connection that is
//! broken, or was in use when a closure panicked, is dropped instead of returned.

use std::panic::resume_unwind;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Semaphore;

use super::DbError;

/// How a pool makes and checks its connections.
pub trait Manage: Send + Sync + 'static {
    /// The connection type.
    type Conn: Send + 'static;
    /// Opens a new connection (blocking).
    fn connect(&self) -> Result<Self::Conn, DbError>;
    /// False when the connection must not be reused.
    fn is_healthy(&self, conn: &mut Self::Conn) -> bool;
}

/// A pool of at most `size` connections.
pub struct Pool<M: Manage> {
    manager: M,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<M::Conn>>,
    /// Time callers wait for a connection (`crate::metrics`).
    waits: prometheus_client::metrics::histogram::Histogram,
}

impl<M: Manage> Pool<M> {
    /// A pool of at most `size` connections, opened lazily.
    pub fn new(manager: M, size: usize) -> Pool<M> {
        // Named by the backend whose manager this is: SQLite's readers or PostgreSQL's pool.
        let name = std::any::type_name::<M>();
        let pool = if name.contains("::sqlite::") {
            "sqlite_readers"
        } else if name.contains("::pg::") {
            "postgres"
        } else {
            "other"
        };
        Pool {
            manager,
            permits: Arc::new(Semaphore::new(size.max(1))),
            idle: Mutex::new(Vec::new()),
            waits: crate::metrics::db_pool_wait(pool),
        }
    }

    /// The manager, to replace a connection found broken while in use.
    pub fn manager(&self) -> &M {
        &self.manager
    }

    /// Adds an already open connection to the idle list.
    pub fn put(&self, conn: M::Conn) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(conn);
    }

    /// Runs `f` with a connection on a blocking thread. A panic in `f` is resumed in the caller.
    pub async fn run<R, F>(self: &Arc<Self>, f: F) -> Result<R, DbError>
    where
        F: FnOnce(&mut M::Conn) -> R + Send + 'static,
        R: Send + 'static,
    {
        let asked = std::time::Instant::now();
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| DbError::Closed)?;
        self.waits.observe(asked.elapsed().as_secs_f64());
        let pool = Arc::clone(self);
        let task = tokio::task::spawn_blocking(move || {
            // Held until the connection is back: the pool never has more than `size` open.
            let _permit = permit;
            let idle = pool
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let mut conn = match idle {
                Some(conn) => conn,
                None => pool.manager.connect()?,
            };
            // On a panic `conn` is dropped while unwinding: a half-used connection never returns.
            let out = f(&mut conn);
            if pool.manager.is_healthy(&mut conn) {
                pool.put(conn);
            }
            Ok(out)
        });
        match task.await {
            Ok(out) => out,
            Err(e) if e.is_panic() => resume_unwind(e.into_panic()),
            Err(_) => Err(DbError::Closed),
        }
    }
}

impl<M: Manage> Drop for Pool<M> {
    fn drop(&mut self) {
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(PoisonError::into_inner));
        if idle.is_empty() {
            return;
        }
        // Closing blocks, and the `postgres` client drives a runtime of its own to say goodbye,
        // which panics inside an async task: close them on a plain thread.
        if let Ok(closer) = std::thread::Builder::new()
            .name("kassa-db-close".into())
            .spawn(move || drop(idle))
        {
            let _ = closer.join();
        }
    }
}
