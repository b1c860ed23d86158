//! Consistency levels and guarantee timestamps.
//!
//! Quiver makes a write visible before acknowledging it, so every read sees
//! every acknowledged write: Strong, and therefore also Bounded, Session
//! and Eventually, hold without waiting. A read's `guarantee_timestamp` (a
//! Session client sends the timestamp of its last write) asks for every
//! write up to that time; one ahead of the server's clock is waited for, as
//! Milvus waits for its service time to pass it. A collection's declared
//! level is kept as a table option and reported by `DescribeCollection`.

use std::time::Duration;

use milvus::proto::common::ConsistencyLevel;
use quiver_common::timestamp::decompose;

use super::door::MilvusDoor;
use super::status::DoorError;

/// The table option holding a collection's consistency level (its number).
const CONSISTENCY_OPTION: &str = "milvus.consistency_level";
/// The longest a read waits for the clock to reach its guarantee timestamp.
const MAX_GUARANTEE_WAIT: Duration = Duration::from_secs(10);

/// A request's consistency level, checked.
pub(super) fn checked_level(level: i32) -> Result<ConsistencyLevel, DoorError> {
    ConsistencyLevel::try_from(level)
        .map_err(|_| DoorError::invalid(format!("invalid consistency level {level}")))
}

impl MilvusDoor {
    /// Waits until every write up to `guarantee` is visible. Visibility is
    /// immediate, so only a guarantee ahead of the clock waits; one further
    /// ahead than [`MAX_GUARANTEE_WAIT`] is an error, and so is one the
    /// clock has not reached after that long (while the meta store is down
    /// the read timestamp stays at the newest one handed out).
    pub(super) async fn await_guarantee(&self, guarantee: u64) -> Result<(), DoorError> {
        // 0: "now" (Strong); 1: Eventually.
        if guarantee <= 1 {
            return Ok(());
        }
        let (wanted_ms, _) = decompose(guarantee);
        let started = std::time::Instant::now();
        loop {
            let now = self.handler.read_timestamp().await?;
            let (now_ms, _) = decompose(now);
            if now >= guarantee || now_ms > wanted_ms {
                return Ok(());
            }
            let ahead = Duration::from_millis(wanted_ms - now_ms + 1);
            if started.elapsed() + ahead > MAX_GUARANTEE_WAIT {
                return Err(DoorError::invalid(format!(
                    "guarantee timestamp {guarantee} is {} ms ahead of the server clock",
                    ahead.as_millis()
                )));
            }
            tokio::time::sleep(ahead).await;
        }
    }

    /// A collection's declared consistency level (Strong if none was).
    pub(super) async fn consistency_level(&self, database: &str, collection: &str) -> i32 {
        self.handler
            .table_options(database, collection)
            .await
            .ok()
            .and_then(|o| o.get(CONSISTENCY_OPTION).and_then(|l| l.parse().ok()))
            .unwrap_or(ConsistencyLevel::Strong as i32)
    }
}

/// The table option recording a collection's declared consistency level.
pub(super) fn level_option(level: ConsistencyLevel) -> (String, Option<String>) {
    (
        CONSISTENCY_OPTION.to_string(),
        Some((level as i32).to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_checked() {
        assert_eq!(checked_level(0).unwrap(), ConsistencyLevel::Strong);
        assert_eq!(checked_level(3).unwrap(), ConsistencyLevel::Eventually);
        assert_eq!(checked_level(99).unwrap_err().code, 1100);
    }
}
