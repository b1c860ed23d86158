//! The prepared-plan cache a [`SqlSession`](super::session::SqlSession) keeps:
//! optimized logical plans of prepared queries by statement text, search
//! path and catalog version, and the reusable physical plan of a prepared
//! search. A leaf: it imports no other module of the crate (the session
//! holds it; `instance` fills and reads it).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use quiver_exec::table::SearchSettings;
use quiver_planner::vector_search::VectorSearchNode;

/// What a cached plan is valid for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PlanKey {
    pub sql: String,
    pub schema: String,
    pub catalog_version: u64,
}

/// A session's optimized plans of prepared queries (bounded; cleared when full).
#[derive(Default)]
pub struct PlanCache {
    plans: HashMap<PlanKey, CachedPlan>,
}

/// What a session keeps of one prepared query.
struct CachedPlan {
    logical: LogicalPlan,
    /// Its reusable physical plan, when it is a search that has one.
    search: Option<CachedSearch>,
}

/// A prepared search whose physical plan is reused: between executions
/// only its query vector and read timestamp change.
pub(crate) struct CachedSearch {
    /// The logical search node: its query expression (with the `$n`
    /// placeholder) and the searched column.
    pub node: VectorSearchNode,
    pub physical: Arc<dyn ExecutionPlan>,
    /// The session's search knobs the plan was made with.
    pub settings: SearchSettings,
    pub task_ctx: Arc<TaskContext>,
    pub schema: SchemaRef,
}

/// Plans a session keeps.
const PLAN_CACHE_ENTRIES: usize = 64;

impl PlanCache {
    pub(crate) fn get(&self, key: &PlanKey) -> Option<LogicalPlan> {
        self.plans.get(key).map(|cached| cached.logical.clone())
    }

    pub(crate) fn insert(&mut self, key: PlanKey, logical: LogicalPlan) {
        if self.plans.len() >= PLAN_CACHE_ENTRIES {
            self.plans.clear();
        }
        self.plans.insert(
            key,
            CachedPlan {
                logical,
                search: None,
            },
        );
    }

    /// The reusable search of `key`, when it was made with `settings`.
    pub(crate) fn search(&self, key: &PlanKey, settings: SearchSettings) -> Option<&CachedSearch> {
        self.plans
            .get(key)?
            .search
            .as_ref()
            .filter(|search| search.settings == settings)
    }

    /// Keeps the physical plan of the cached query `key`.
    pub(crate) fn set_search(&mut self, key: &PlanKey, search: CachedSearch) {
        if let Some(cached) = self.plans.get_mut(key) {
            cached.search = Some(search);
        }
    }
}
